"""Where a job's cut comes from: the work bucket (the API) or a ``reelforge run`` output folder (the CLI).

Both read the storyboard and the film version's report.json and name every render's media by its path
inside a bundle (``cut.media_name``); each returns, beside the cut, where those media are
(an object key in the work bucket, or a local file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelforge_gateway.timeline.cut import Cut, Render, build_cut, media_name
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, encoded_handles, encoded_rate, parse_storyboard

OUT_STORYBOARD = "storyboard.json"  # written by `reelforge run` beside report.json


@dataclass(frozen=True, kw_only=True)
class Sourced:
    """A cut and where each of its media is: bundle path -> object key (``bucket``) or local file."""

    cut: Cut
    keys: dict[str, str]
    files: dict[str, Path]
    bucket: str | None = None


def _render(
    board: Storyboard,
    n: int,
    attempt: int,
    delivered: bool,
    entry: dict[str, Any],
    has_audio: bool,
    handles: bool = False,
    take: int = 0,
    rendered: int | None = None,
) -> Render:
    """A render; ``handles``: its media is the whole render (``Keys.segment_handles``), the film's part its middle;
    ``rendered``: the frames the generator rendered (a model's frame-count rule may have fitted the handles)."""
    seg = board.segments[n - 1]
    frames, fps = encoded_rate(board, seg)
    head, tail = encoded_handles(board, seg, rendered) if handles else (0, 0)
    qa = entry.get("qa") or {}
    return Render(
        attempt=attempt,
        take=take,
        seed=entry.get("seed") if take else None,
        prompt=entry.get("prompt") if take else None,
        media=media_name(n, seg.id, attempt, delivered, take),
        frames=head + frames + tail,
        fps=fps,
        head=head,
        tail=tail,
        has_audio=has_audio,
        qa={k: float(v) for k, v in qa.items()},
        qa_passed=entry.get("qa_passed"),
        failed_gates=tuple(entry.get("qa_failed_gates") or entry.get("failed_gates") or ()),
    )


def _alternate_entry(entry: dict[str, Any], attempt: int) -> dict[str, Any]:
    """What report.json's QA history says of an earlier attempt."""
    for h in entry.get("qa_history") or []:
        if h.get("attempt") == attempt:
            return {"qa": h.get("scores", {}), "qa_passed": h.get("passed"), "failed_gates": h.get("failed_gates", [])}
    return {}


def _rendered(store: ObjectStore, bucket: str, job_id: str, n: int, attempt: int, take: int = 0) -> int | None:
    """The frames the generator rendered of an attempt (its generation record), None where it kept none."""
    key = Keys.segment_generation(job_id, n, attempt, take)
    if not store.exists(bucket, key):
        return None
    return int(store.get_json(bucket, key).get("frame_count") or 0) or None


def _later(store: ObjectStore, bucket: str, job_id: str, n: int, attempt: int) -> list[int]:
    """Attempts of segment ``n`` after ``attempt`` (a re-cut put an earlier one in the film): alternates too."""
    listing = store.list_keys(bucket, f"{Keys.segment(job_id, n)}/")
    return [a for a in Keys.segment_video_attempts(job_id, n, listing) if a > attempt]


def from_store(store: ObjectStore, bucket: str, job_id: str, version: int) -> Sourced:
    """A job's cut from the work bucket: its storyboard, the version's report.json, its segment videos."""
    board = parse_storyboard(store.get_json(bucket, Keys.storyboard(job_id)))
    report = store.get_json(bucket, Keys.report(job_id, version))
    entries = {int(s["index"]): s for s in report["segments"]}
    renders: dict[int, list[Render]] = {}
    keys: dict[str, str] = {}
    for n in range(1, len(board.segments) + 1):
        entry = entries.get(n, {})
        attempt = int(entry.get("attempt", 1))
        key = entry.get("video_key") or Keys.segment_video(job_id, n, attempt)
        whole = store.exists(bucket, Keys.segment_handles(key))
        heard = store.exists(bucket, Keys.segment_sound(key))
        take = int(entry.get("take", 0))
        rendered = _rendered(store, bucket, job_id, n, attempt, take) if whole else None
        delivered = _render(board, n, attempt, True, entry, heard, whole, take=take, rendered=rendered)
        renders[n], keys[delivered.media] = [delivered], Keys.segment_handles(key) if whole else key
        for other in entry.get("takes") or []:  # takes rendered beside it (takes: N, variants): a swap puts one in
            if other.get("in_film") or not (other_key := other.get("video_key")) or not store.exists(bucket, other_key):
                continue
            whole = store.exists(bucket, Keys.segment_handles(other_key))
            heard = store.exists(bucket, Keys.segment_sound(other_key))
            found = {"qa": other.get("scores"), "qa_passed": other.get("passed"), "failed_gates": other.get("failed_gates")}
            found |= {"seed": other.get("seed"), "prompt": other.get("prompt")}
            rendered = _rendered(store, bucket, job_id, n, attempt, int(other["take"])) if whole else None
            alt = _render(board, n, attempt, False, found, heard, whole, take=int(other["take"]), rendered=rendered)
            renders[n].append(alt)
            keys[alt.media] = Keys.segment_handles(other_key) if whole else other_key
        for earlier in [*range(attempt - 1, 0, -1), *_later(store, bucket, job_id, n, attempt)]:
            other = Keys.segment_video(job_id, n, earlier)
            if store.exists(bucket, other):
                whole = store.exists(bucket, Keys.segment_handles(other))
                heard = store.exists(bucket, Keys.segment_sound(other))
                rendered = _rendered(store, bucket, job_id, n, earlier) if whole else None
                alt = _render(board, n, earlier, False, _alternate_entry(entry, earlier), heard, whole, rendered=rendered)
                renders[n].append(alt)
                keys[alt.media] = Keys.segment_handles(other) if whole else other
    cut = build_cut(board, report, renders=renders)
    keys[cut.film] = Keys.film(job_id, version)
    return Sourced(cut=cut, keys=keys, files={}, bucket=bucket)


def out_attempt_file(out: Path, n: int, attempt: int, delivered: bool, handles: bool = False) -> Path:
    """Where ``reelforge run`` puts a segment's attempt: ``segments/NNN.mp4`` (delivered), ``segments/NNN.attemptA.mp4``
    (an earlier one); its whole render with handles (``output.handles_s``) beside it as ``NNN.handles.mp4``,
    ``NNN.attemptA.handles.mp4``."""
    name = f"{n:03d}" if delivered else f"{n:03d}.attempt{attempt}"
    return out / "segments" / f"{name}{'.handles' if handles else ''}.mp4"


def from_out(out: Path) -> Sourced:
    """A cut from a ``reelforge run`` output folder (report.json, storyboard.json, segments/, final.mp4)."""
    from reelforge_shared.media import probe  # PyAV: the CLI has it; the gateway reads the bucket instead

    for name in ("report.json", OUT_STORYBOARD, "final.mp4"):
        if not (out / name).is_file():
            raise FileNotFoundError(f"{out / name} is missing: give the --out folder of a finished `reelforge run`")
    board = parse_storyboard(json.loads((out / OUT_STORYBOARD).read_text()))
    report = json.loads((out / "report.json").read_text())
    entries = {int(s["index"]): s for s in report["segments"]}
    renders: dict[int, list[Render]] = {}
    files: dict[str, Path] = {}

    def rendered(n: int, whole: Path) -> int | None:
        """The generator's frames of a whole render with handles (its encoded frames at the segment's own rate)."""
        if not whole.is_file():
            return None
        seg, (_, rate) = board.segments[n - 1], encoded_rate(board, board.segments[n - 1])
        return round(probe(whole).frame_count * seg.fps / rate)

    for n in range(1, len(board.segments) + 1):
        entry = entries.get(n, {})
        attempt = int(entry.get("attempt", 1))
        path = out_attempt_file(out, n, attempt, True)
        whole = out_attempt_file(out, n, attempt, True, handles=True)
        heard = probe(path, count_frames=False).has_audio
        delivered = _render(board, n, attempt, True, entry, heard, whole.is_file(), rendered=rendered(n, whole))
        renders[n], files[delivered.media] = [delivered], whole if whole.is_file() else path
        for earlier in range(attempt - 1, 0, -1):
            other = out_attempt_file(out, n, earlier, False)
            if other.is_file():
                whole = out_attempt_file(out, n, earlier, False, handles=True)
                heard = probe(other, count_frames=False).has_audio
                found = _alternate_entry(entry, earlier)
                alt = _render(board, n, earlier, False, found, heard, whole.is_file(), rendered=rendered(n, whole))
                renders[n].append(alt)
                files[alt.media] = whole if whole.is_file() else other
    cut = build_cut(board, report, renders=renders)
    files[cut.film] = out / "final.mp4"
    return Sourced(cut=cut, keys={}, files=files)
