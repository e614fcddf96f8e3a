"""An editor's timeline back into the job: what it asks for, or why it cannot be done (naming the clip).

The film track (the first enabled video track) is read clip by clip, each a render of one of the job's segments
(its metadata ``reelforge.index``, ``attempt`` and ``take``, its media one of the job's files) with a source range
inside that media (handles included), and an OTIO transition before a clip is the transition into it.

- The cut as exported (same shots, renders, ranges and transitions), with a clip's ``reelforge.prompt`` or
  ``reelforge.seed`` edited: a re-render of that shot (:class:`Rerender`).
- The cut as exported with one clip replaced by another take of the same attempt (a segment rendered with ``takes``
  or ``variants``, lifted from a disabled alternate track): that take's selection (:class:`Swap`), as
  ``takes/{k}/select``.
- Any other cut: clips trimmed within their media (extended into the handles, or shortened), reordered, removed,
  swapped for an earlier attempt or another take, transitions moved or removed: a new cut (:class:`Plan.recut`, one
  ``events.CutEntry`` per clip) that the job store records and the encoder assembles from the stored media by stream
  copy, re-encoding only the pieces where a cut falls off a keyframe and the transitions; nothing is rendered.

Refused (:class:`ImportRefused`, naming the clip): a clip of no segment of this job or whose media is not one of the
job's renders, a source range outside the media, a shot twice, media at another rate than the film's (a re-cut joins
media at the film's rate), a transition before the first clip or after the last, a gap, transitions that overlap
inside a clip, and a re-cut together with prompt or seed edits (re-import them one after the other).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlparse

import opentimelineio as otio

from reelforge_gateway.timeline.cut import Cut, Render, Shot
from reelforge_gateway.timeline.export import NAMESPACE
from reelforge_shared.events import CutEntry


class ImportRefused(ValueError):
    """The timeline asks for what cannot be done; ``clip`` names the clip (None: the timeline as a whole)."""

    def __init__(self, clip: str | None, message: str) -> None:
        super().__init__(f"{clip}: {message}" if clip else message)
        self.clip = clip


@dataclass(frozen=True, slots=True)
class Rerender:
    index: int
    prompt: str | None
    seed: int | None


@dataclass(frozen=True, slots=True)
class Swap:
    """Take ``take`` of shot ``index`` into the film instead of the one there (``takes/{k}/select``: nothing rendered)."""

    index: int
    take: int


@dataclass(frozen=True, slots=True)
class Plan:
    rerenders: list[Rerender]
    swaps: list[Swap]
    recut: tuple[CutEntry, ...] = ()  # a new cut of the film: its clips in order (empty: none asked)


@dataclass(frozen=True, slots=True)
class _Placed:
    """One clip of the edited film track: its shot and render, the frames of the render's media it uses, and the
    transition into it."""

    name: str
    shot: Shot
    render: Render
    meta: dict[str, Any]
    source_in: int
    source_out: int
    transition: str = "cut"
    overlap: int = 0  # film frames of that transition

    @property
    def entry(self) -> CutEntry:
        return CutEntry(
            index=self.shot.index,
            attempt=self.render.attempt,
            take=self.render.take,
            source_in=self.source_in,
            source_out=self.source_out,
            transition=self.transition,  # checked against TRANSITIONS
            transition_frames=self.overlap,
        )


TRANSITIONS = ("dissolve", "fade")


def _render_of(shot: Shot, attempt: object, take: object) -> Render | None:
    return next((t for t in shot.renders if t.attempt == attempt and t.take == (take or 0)), None)


def _media_matches(clip: otio.schema.Clip, render: Render, keys: dict[str, str]) -> bool:
    reference = clip.media_reference
    if not isinstance(reference, otio.schema.ExternalReference):
        return False
    path = urlparse(reference.target_url).path
    file_name = render.media.rsplit("/", 1)[-1]
    return path.endswith(f"/{file_name}") or path == render.media or (render.media in keys and path.endswith(keys[render.media]))


def _place(cut: Cut, clip: otio.schema.Clip, position: int, keys: dict[str, str]) -> _Placed:
    """The clip as a shot's render and the frames of its media it uses; :class:`ImportRefused` naming it otherwise."""
    found = clip.metadata.get(NAMESPACE)
    meta = dict(found) if isinstance(found, Mapping) else None  # OTIO's own mapping type, not a dict
    name = clip.name or f"clip {position}"
    shot = cut.shot(meta["index"]) if meta is not None and isinstance(meta.get("index"), int) else None
    if meta is None or shot is None:
        raise ImportRefused(name, "not a clip of this job (its metadata 'reelforge.index' names no shot)")
    render = _render_of(shot, meta.get("attempt"), meta.get("take"))
    if render is None or not _media_matches(clip, render, keys):
        raise ImportRefused(name, f"its media is not a render of shot {shot.index} '{shot.id}' of this job")
    if clip.source_range is None or not _within(clip.source_range, render):
        media = f"0..{render.frames} at {render.fps:g} fps"
        raise ImportRefused(name, f"its source range {_frames(clip.source_range)} is outside its media ({media})")
    first = round(clip.source_range.start_time.rescaled_to(render.fps).value)
    last = round(clip.source_range.end_time_exclusive().rescaled_to(render.fps).value)
    return _Placed(name, shot, render, meta, first, last)


def _transition_into(cut: Cut, transition: otio.schema.Transition, name: str) -> tuple[str, int]:
    """(kind, film frames) of a transition on the film track; under two frames is a cut (as the encoder counts)."""
    found = transition.metadata.get(NAMESPACE)
    kind = str(dict(found).get("type", "dissolve")) if isinstance(found, Mapping) else "dissolve"
    if transition.transition_type != otio.schema.TransitionTypes.SMPTE_Dissolve or kind not in TRANSITIONS:
        raise ImportRefused(name, f"the transition into it is {transition.transition_type} '{kind}': only dissolves and fades")
    frames = round((transition.in_offset + transition.out_offset).rescaled_to(cut.fps).value)
    return (kind, frames) if frames >= 2 else ("cut", 0)


def _film_track(cut: Cut, timeline: otio.schema.Timeline, keys: dict[str, str]) -> list[_Placed]:
    """Every clip of the film track in order, with the transition into it."""
    tracks = [t for t in timeline.video_tracks() if t.enabled]
    if not tracks:
        raise ImportRefused(None, "the timeline has no enabled video track")
    placed: list[_Placed] = []
    into: otio.schema.Transition | None = None
    for item in tracks[0]:
        if isinstance(item, otio.schema.Transition):
            if not placed:
                raise ImportRefused(item.name or "transition", "a transition before the first clip: it has nothing to leave")
            into = item
        elif isinstance(item, otio.schema.Clip):
            clip = _place(cut, item, len(placed) + 1, keys)
            if into is not None:
                kind, frames = _transition_into(cut, into, clip.name)
                clip, into = replace(clip, transition=kind, overlap=frames), None
            placed.append(clip)
        else:
            after = placed[-1].name if placed else "the start"
            raise ImportRefused(placed[-1].name if placed else None, f"a {type(item).__name__} after {after}: a cut has no gaps")
    if into is not None:
        raise ImportRefused(placed[-1].name, "a transition after the last clip: it has nothing to enter")
    if not placed:
        raise ImportRefused(None, "the film track has no clip")
    return placed


def plan_import(cut: Cut, timeline: otio.schema.Timeline, keys: dict[str, str]) -> Plan:
    """The re-renders, take swaps or new cut an edited timeline asks for; :class:`ImportRefused` for anything else."""
    placed = _film_track(cut, timeline, keys)
    seen: dict[int, str] = {}
    for clip in placed:
        if clip.shot.index in seen:
            raise ImportRefused(clip.name, f"shot {clip.shot.index} is in the cut twice (also as {seen[clip.shot.index]})")
        seen[clip.shot.index] = clip.name
    rerenders = [r for clip in placed if (r := _edited(clip)) is not None]
    exported = [(s.index, s.render.attempt, s.render.head, s.render.head + s.render.used, s.overlap) for s in cut.shots]
    edited = [(c.shot.index, c.render.attempt, c.source_in, c.source_out, c.overlap) for c in placed]
    if edited != exported or any(c.transition != s.transition for c, s in zip(placed, cut.shots, strict=True) if c.overlap):
        if rerenders:
            raise ImportRefused(None, "a timeline re-imports a new cut or prompt and seed edits, not both at once")
        return Plan([], [], tuple(_checked(cut, placed)))
    swaps = [(c.name, Swap(c.shot.index, c.render.take)) for c in placed if c.render is not c.shot.render]
    if swaps and rerenders:
        raise ImportRefused(None, "a timeline re-imports take swaps or prompt and seed edits, not both at once")
    if len(swaps) > 1:  # each swap is a film version of its own (takes/{k}/select), made once the last one is
        raise ImportRefused(swaps[1][0], "one take swap per re-import: re-import again once the film with the first is made")
    if not rerenders and not swaps:
        raise ImportRefused(
            None, "nothing changed: edit a clip's reelforge.prompt or reelforge.seed, swap in another take, or cut the film"
        )
    return Plan(rerenders, [swap for _, swap in swaps])


def _edited(clip: _Placed) -> Rerender | None:
    """The re-render a clip's edited prompt or seed asks for, or None."""
    shot, render, meta, name = clip.shot, clip.render, clip.meta, clip.name
    prompt, seed = meta.get("prompt"), meta.get("seed")
    if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise ImportRefused(name, f"reelforge.seed {seed!r} is not a whole number from 0 to 2**32 - 1")
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise ImportRefused(name, "reelforge.prompt must be text")
    new_prompt = prompt if prompt != (render.prompt or shot.prompt) else None
    new_seed = seed if seed != (shot.seed if render.seed is None else render.seed) else None
    return Rerender(shot.index, new_prompt, new_seed) if new_prompt is not None or new_seed is not None else None


def _checked(cut: Cut, placed: list[_Placed]) -> list[CutEntry]:
    """The new cut's entries, once every clip's media is at the film's rate and no two transitions overlap inside a clip
    (as the encoder joins them: ``film_joins.SegmentCut``)."""
    for i, clip in enumerate(placed):
        if abs(clip.render.fps - cut.fps) > 1e-6:
            raise ImportRefused(
                clip.name,
                f"its media is at {clip.render.fps:g} fps, the film at {cut.fps:g}: a re-cut joins media at the film's rate",
            )
        after = placed[i + 1].overlap if i + 1 < len(placed) else 0
        used = clip.source_out - clip.source_in
        if clip.overlap // 2 + (after - after // 2) > used:
            raise ImportRefused(clip.name, f"its {used} frames are fewer than the transitions into and out of it take")
    return [c.entry for c in placed]


def _frames(span: otio.opentime.TimeRange | None) -> str:
    if span is None:
        return "(none)"
    return f"{span.start_time.to_frames()}..{span.end_time_exclusive().to_frames()} at {span.start_time.rate:g} fps"


def _within(span: otio.opentime.TimeRange, render: Render) -> bool:
    """Whether a clip's source range lies inside its render's media (handles included)."""
    start = span.start_time.rescaled_to(render.fps).value
    end = span.end_time_exclusive().rescaled_to(render.fps).value
    return span.duration.value > 0 and -1e-6 <= start and end <= render.frames + 1e-6
