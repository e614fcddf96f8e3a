"""A finished job as an editor sees it (a :class:`Cut`): shots in film order, their renders, transitions and QA findings.

Built from what a job stores and nothing else: the storyboard, the film version's report.json (the
delivered attempt of every segment, its prompt, seed, model and QA scores, the film's continuity
and join checks, the re-renders, and the version's cut when an editor's timeline re-cut it: then the
shots are its entries in its order, each with the frames of its media the film uses) and the segment
videos. The same function reads a job from the
work bucket (the API) and from a ``reelforge run`` output folder (the CLI); only where the media
come from differs (:class:`Media`: a name inside the bundle -> an object key or a local file).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from reelforge_shared.storyboard import Storyboard

MEDIA_DIR = "media"  # media references are relative to the timeline file: media/NNN-ID.mp4 beside it in the bundle


@dataclass(frozen=True, kw_only=True)
class Render:
    """One render of a shot: an attempt (and, for a segment rendered with ``takes``/``variants``, one of its takes),
    its media (relative path in the bundle) and what QA said about it."""

    attempt: int
    media: str
    take: int = 0  # of a segment rendered several times at once (takes: N, variants; reelforge_shared.takes)
    seed: int | None = None  # its own, where it differs from the shot's (another take)
    prompt: str | None = None
    frames: int = field(metadata={"doc": "frames of the media file at ``fps``"})
    fps: float
    head: int = 0  # handle frames before the part the film uses
    tail: int = 0  # handle frames after it
    has_audio: bool = False
    qa: dict[str, float] = field(default_factory=dict)
    qa_passed: bool | None = None
    failed_gates: tuple[str, ...] = ()

    @property
    def used(self) -> int:
        """Frames of the media the film uses (the trimmed middle)."""
        return self.frames - self.head - self.tail


@dataclass(frozen=True, kw_only=True)
class Finding:
    """A QA finding placed in the film: a failed gate, a continuity check below threshold, a join, a re-render."""

    kind: str  # gate, continuity, join, rerender
    text: str
    frame: int  # film frame where it shows
    index: int | None = None  # the shot it belongs to (None: the film)


@dataclass(frozen=True, kw_only=True)
class Shot:
    index: int  # 1-based film position
    id: str
    prompt: str
    seed: int | None
    model: str | None
    shot_key: str | None
    transition: str  # into this shot: cut, dissolve, fade
    overlap: int  # film frames of that transition (0: a cut)
    start: int  # film frame where the shot starts
    frames: int  # film frames the shot lasts
    render: Render  # the one in the film
    alternates: tuple[Render, ...] = ()  # earlier attempts and the other takes of its attempt

    @property
    def renders(self) -> tuple[Render, ...]:
        return (self.render, *self.alternates)


@dataclass(frozen=True, kw_only=True)
class Cut:
    job_id: str
    title: str
    version: int
    fps: float
    width: int
    height: int
    frame_count: int
    shots: tuple[Shot, ...]
    findings: tuple[Finding, ...] = ()
    film: str = "final.mp4"  # the film beside the timeline in a bundle
    pool: tuple[Shot, ...] = ()  # every segment of the storyboard with its renders, in the film or not (re-import)

    def shot(self, index: int) -> Shot | None:
        """Segment ``index``'s shot with its renders (one a re-cut left out too); None: no such segment."""
        return next((s for s in (*self.shots, *self.pool) if s.index == index), None)


def media_name(index: int, segment_id: str, attempt: int, delivered: bool, take: int = 0) -> str:
    """Bundle path of a render's media: ``media/002-turn.mp4`` (the one in the film), ``media/002-turn.attempt1.mp4``
    (an earlier attempt), ``media/002-turn.attempt1.take2.mp4`` (take 2 of attempt 1, rendered beside the one in the
    film)."""
    if delivered:
        return f"{MEDIA_DIR}/{index:03d}-{segment_id}.mp4"
    return f"{MEDIA_DIR}/{index:03d}-{segment_id}.attempt{attempt}{f'.take{take}' if take else ''}.mp4"


def overlap_frames(kind: str, duration_s: float, fps: float, first: bool) -> int:
    """Film frames of a transition, as the encoder counts them (``film_joins.overlaps``): under two frames is a cut."""
    frames = round(duration_s * fps) if kind in ("dissolve", "fade") else 0
    return frames if frames >= 2 and not first else 0


def build_cut(
    board: Storyboard,
    report: dict[str, Any],
    *,
    renders: dict[int, list[Render]],
    generation: dict[int, dict[str, Any]] | None = None,
) -> Cut:
    """The cut of a film version from its storyboard and report.json.

    ``renders``: per segment (1-based), its renders with the one in the film first (the attempt report.json
    names), then the alternates. ``generation``: per segment, the generator's record of the delivered
    attempt where report.json lacks the model or seed. A version re-cut from an editor's timeline (report.json's
    ``cut``) has its entries as shots, in its order, each render's ``head`` and ``tail`` the frames of its media
    the cut leaves out.
    """
    film = report.get("film") or {}
    if not film:
        raise ValueError(f"job {report.get('job_id')} has no film yet: a timeline is made from a finished job")
    fps = float(film["fps"])
    generation = generation or {}
    entries = {int(s["index"]): s for s in report.get("segments", [])}
    pool, start = [], 0
    for n, seg in enumerate(board.segments, start=1):
        entry, gen = entries.get(n, {}), generation.get(n, {})
        render, *alternates = renders[n]
        frames = round(render.used * fps / render.fps)
        pool.append(
            Shot(
                index=n,
                id=seg.id,
                prompt=entry.get("prompt") or gen.get("prompt") or seg.prompt,
                seed=entry.get("seed", gen.get("seed")),
                model=entry.get("model") or gen.get("model") or (report.get("model") or {}).get("name"),
                shot_key=entry.get("shot_key"),
                transition=seg.transition.type,
                overlap=overlap_frames(seg.transition.type, seg.transition.duration, fps, n == 1),
                start=start,
                frames=frames,
                render=render,
                alternates=tuple(alternates),
            )
        )
        start += frames
    shots = _recut(pool, report.get("cut") or [], fps) if report.get("cut") else pool
    return Cut(
        job_id=str(report.get("job_id") or ""),
        title=str(report.get("title") or board.title),
        version=int(film.get("version", 1)),
        fps=fps,
        width=int(film["width"]),
        height=int(film["height"]),
        frame_count=int(film["frame_count"]),
        shots=tuple(shots),
        findings=tuple(_findings(report, shots, fps)),
        pool=tuple(pool),
    )


def _recut(pool: list[Shot], cut: list[dict[str, Any]], fps: float) -> list[Shot]:
    """The shots of a re-cut version (report.json's ``cut``): its entries in order, each its render trimmed as it says."""
    shots, start = [], 0
    for entry in cut:
        shot = pool[int(entry["index"]) - 1]
        render = shot.render  # report.json names the entry's attempt and take as the segment's delivered one
        trimmed = replace(render, head=int(entry["source_in"]), tail=render.frames - int(entry["source_out"]))
        frames = round(trimmed.used * fps / render.fps)
        kind, overlap = str(entry.get("transition") or "cut"), int(entry.get("transition_frames") or 0)
        shots.append(replace(shot, transition=kind, overlap=overlap, start=start, frames=frames, render=trimmed))
        start += frames
    return shots


def _findings(report: dict[str, Any], shots: list[Shot], fps: float) -> list[Finding]:
    by_id, by_index = {s.id: s for s in shots}, {s.index: s for s in shots}
    found: list[Finding] = []
    for entry in report.get("segments", []):
        if (shot := by_index.get(int(entry["index"]))) is None:
            continue  # a segment the version's cut left out
        for name, gate in (entry.get("gates") or {}).items():
            if not gate.get("passed", True):
                text = f"QA gate {name}: {gate['score']:.3f} below {gate['threshold']}" + (
                    f" ({gate['detail']})" if gate.get("detail") else ""
                )
                found.append(Finding(kind="gate", text=text, frame=shot.start, index=shot.index))
    film_qa = report.get("film_qa") or {}
    for check in (*film_qa.get("characters", []), *film_qa.get("locations", []), *film_qa.get("light", [])):
        if check.get("passed", True):
            continue
        for pair in check.get("pairs", []):
            if pair.get("gated", True) and pair["score"] < check["threshold"] and (seen := by_id.get(pair["a"])):
                pair_text = f"{pair['a']} / {pair['b']} {pair['score']:.3f} below {check['threshold']}"
                text = f"continuity {check['kind']} {check['name']}: {pair_text}"
                found.append(Finding(kind="continuity", text=text, frame=seen.start, index=seen.index))
    for boundary in film_qa.get("boundaries", []):
        for f in boundary.get("findings", []):
            frame = f.get("frame")
            frame = round(f["time_s"] * fps) if frame is None else int(frame)
            found.append(
                Finding(kind="join", text=f"join {boundary['before']} -> {boundary['after']}: {f['detail']}", frame=frame)
            )
    for r in report.get("regenerations", []):
        if (shot := by_index.get(int(r["index"]))) is None:
            continue
        after = "" if r.get("after") is None else f" -> {r['after']:.3f}"
        before = "" if r.get("before") is None else f" {r['before']:.3f}"
        text = f"re-rendered for {r['check']}{before}{after} (version {r['requested_in_version']}): {r['reason']}"
        found.append(Finding(kind="rerender", text=text, frame=shot.start, index=shot.index))
    return sorted(found, key=lambda f: (f.frame, f.kind))
