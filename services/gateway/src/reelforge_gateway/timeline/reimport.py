"""An editor's timeline back into the job: what it asks for, or why it cannot be done (naming the clip).

Re-imported today: a clip whose metadata ``reelforge.prompt`` or ``reelforge.seed`` was edited becomes a
re-render of that shot; a clip replaced by another take of the same attempt (a segment rendered with ``takes`` or
``variants``, on the disabled alternate tracks) becomes that take's selection, a film version joined by stream copy with
nothing rendered. A clip whose source range leaves its media (beyond the handles, when it has them) is refused
naming the clip. The rest of the cut (trims, reorders, removals, earlier attempts) must be the film's as exported:
a film version assembled from such a cut is not made yet, and such a timeline is refused naming the first clip
that differs, as is a clip whose media is not this job's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

import opentimelineio as otio

from reelforge_gateway.timeline.cut import Cut, Render, Shot
from reelforge_gateway.timeline.export import NAMESPACE, _rt


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


def _render_of(shot: Shot, attempt: object, take: object) -> Render | None:
    return next((t for t in shot.renders if t.attempt == attempt and t.take == (take or 0)), None)


def _media_matches(clip: otio.schema.Clip, render: Render, keys: dict[str, str]) -> bool:
    reference = clip.media_reference
    if not isinstance(reference, otio.schema.ExternalReference):
        return False
    path = urlparse(reference.target_url).path
    file_name = render.media.rsplit("/", 1)[-1]
    return path.endswith(f"/{file_name}") or path == render.media or (render.media in keys and path.endswith(keys[render.media]))


def plan_import(cut: Cut, timeline: otio.schema.Timeline, keys: dict[str, str]) -> Plan:
    """The re-renders and take swaps an edited timeline asks for; :class:`ImportRefused` for anything else it asks."""
    tracks = [t for t in timeline.video_tracks() if t.enabled]
    if not tracks:
        raise ImportRefused(None, "the timeline has no enabled video track")
    clips = list(tracks[0].find_clips())
    rerenders, swaps = [], []
    for position, clip in enumerate(clips, start=1):
        found = clip.metadata.get(NAMESPACE)
        meta = dict(found) if isinstance(found, Mapping) else None  # OTIO's own mapping type, not a dict
        name = clip.name or f"clip {position}"
        if meta is None or not isinstance(meta.get("index"), int) or not 1 <= meta["index"] <= len(cut.shots):
            raise ImportRefused(name, "not a clip of this job (its metadata 'reelforge.index' names no shot)")
        shot = cut.shot(meta["index"])
        render = _render_of(shot, meta.get("attempt"), meta.get("take"))
        if render is None or not _media_matches(clip, render, keys):
            raise ImportRefused(name, f"its media is not a render of shot {shot.index} '{shot.id}' of this job")
        if clip.source_range is None or not _within(clip.source_range, render):
            media = f"0..{render.frames} at {render.fps:g} fps"
            raise ImportRefused(name, f"its source range {_frames(clip.source_range)} is outside its media ({media})")
        swapped = render is not shot.render and render.attempt == shot.render.attempt  # another take of the same attempt
        if (
            shot.index != position
            or (render is not shot.render and not swapped)
            or clip.source_range != _exported_range(clip, render)
        ):
            raise ImportRefused(
                name,
                "trims, reorders, removals and earlier attempts are not re-imported yet: only a clip's prompt or seed "
                "(metadata reelforge.prompt, reelforge.seed) may change, or another take of it replace it",
            )
        if swapped:
            swaps.append((name, Swap(shot.index, render.take)))
        prompt, seed = meta.get("prompt"), meta.get("seed")
        if seed is not None and (not isinstance(seed, int) or not 0 <= seed < 2**32):
            raise ImportRefused(name, f"reelforge.seed {seed!r} is not a whole number from 0 to 2**32 - 1")
        if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
            raise ImportRefused(name, "reelforge.prompt must be text")
        new_prompt = prompt if prompt != (render.prompt or shot.prompt) else None
        new_seed = seed if seed != (shot.seed if render.seed is None else render.seed) else None
        if new_prompt is not None or new_seed is not None:
            rerenders.append(Rerender(shot.index, new_prompt, new_seed))
    if len(clips) != len(cut.shots):
        raise ImportRefused(None, f"{len(clips)} clips for a film of {len(cut.shots)} shots: removals are not re-imported yet")
    if swaps and rerenders:
        raise ImportRefused(None, "a timeline re-imports take swaps or prompt and seed edits, not both at once")
    if len(swaps) > 1:  # each swap is a film version of its own (takes/{k}/select), made once the last one is
        raise ImportRefused(swaps[1][0], "one take swap per re-import: re-import again once the film with the first is made")
    if not rerenders and not swaps:
        raise ImportRefused(None, "nothing changed: edit a clip's reelforge.prompt or reelforge.seed, or swap in another take")
    return Plan(rerenders, [swap for _, swap in swaps])


def _exported_range(clip: otio.schema.Clip, render: Render) -> otio.opentime.TimeRange:
    """The source range the export gave this render, at the clip's own rate."""
    rate = clip.source_range.start_time.rate if clip.source_range else render.fps
    return otio.opentime.TimeRange(_rt(render.head, render.fps, rate), _rt(render.used, render.fps, rate))


def _frames(span: otio.opentime.TimeRange | None) -> str:
    if span is None:
        return "(none)"
    return f"{span.start_time.to_frames()}..{span.end_time_exclusive().to_frames()} at {span.start_time.rate:g} fps"


def _within(span: otio.opentime.TimeRange, render: Render) -> bool:
    """Whether a clip's source range lies inside its render's media (handles included)."""
    start = span.start_time.rescaled_to(render.fps).value
    end = span.end_time_exclusive().rescaled_to(render.fps).value
    return span.duration.value > 0 and -1e-6 <= start and end <= render.frames + 1e-6
