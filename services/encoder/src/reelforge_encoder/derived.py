"""Derived renditions of a film version: the editing utilities (:mod:`reelforge_encoder.editing`) on the stored film.

Asked through the API (``POST /v1/jobs/{id}/films/{version}/renditions``, event ``rendition.requested``), made here
from the film in the work bucket, and stored beside it under ``derived/`` with a record written last
(``Keys.derived_meta``): the rendition's key, or why it could not be made. A redelivered request finds the record
and announces it again without encoding anything. A rendition that cannot be made fails alone
(``rendition.failed``); the film and its job are not touched.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any

from reelforge_encoder.editing import (
    AUDIO_SUFFIX,
    change_speed,
    cues,
    extract_audio,
    extract_frames,
    loop,
    srt,
    subtitle,
    trim,
    webvtt,
)
from reelforge_encoder.handler import EncoderDeps, with_quality
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import (
    AudioRendition,
    Event,
    FramesRendition,
    LoopRendition,
    RenditionEncoded,
    RenditionFailed,
    RenditionRequested,
    SpeedRendition,
    SubtitlesRendition,
    TrimRendition,
)
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import Storyboard, parse_storyboard

MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".wav": "audio/wav",
    ".zip": "application/zip",
    ".srt": "application/x-subrip",
    ".vtt": "text/vtt",
}


def _derive(event: RenditionRequested, film: Path, board: Storyboard, work: Path, deps: EncoderDeps) -> Path:
    """The rendition's file, made from ``film`` by its recipe."""
    spec, codec = event.rendition, deps.codec
    match spec:
        case SpeedRendition():
            return change_speed(film, spec.factor, work / "speed.mp4", codec)
        case AudioRendition():
            return extract_audio(film, spec.format, work / f"audio{AUDIO_SUFFIX[spec.format]}", codec.exe)
        case FramesRendition():
            stills = extract_frames(film, spec.fps, spec.format, work / "stills", codec.exe)
            with zipfile.ZipFile(work / "stills.zip", "w") as bundle:  # JPEG and PNG are compressed already
                for still in stills:
                    bundle.write(still, still.name)
            return work / "stills.zip"
        case LoopRendition():
            return loop(film, spec.times, work / "loop.mp4", codec.exe)
        case TrimRendition():
            return trim(film, spec.start_s, spec.end_s, work / "trim.mp4", codec)
        case SubtitlesRendition():
            found = cues(board)
            if not found:
                raise InvalidInput("subtitles: the storyboard has no narration or <S>...<E> speech to make cues from")
            if spec.format in ("srt", "vtt"):
                out = work / f"subtitles.{spec.format}"
                out.write_text(srt(found) if spec.format == "srt" else webvtt(found))
                return out
            (work / "cues.srt").write_text(srt(found))
            return subtitle(film, work / "cues.srt", work / "subtitled.mp4", codec, burn=spec.format == "burn")
    raise InvalidInput(f"rendition.kind: {spec.kind!r} is not made here")  # the event's union names every kind above


def handle_rendition(event: RenditionRequested, deps: EncoderDeps) -> list[Event]:
    """Make a derived rendition of a film version unless its record is stored; announce it (or why it failed)."""
    job, version, rid = event.job_id, event.version, event.rendition_id
    record_key = Keys.derived_meta(job, version, rid)
    if not deps.store.exists(deps.bucket, record_key):
        record: dict[str, Any]
        board = parse_storyboard(deps.store.get_json(deps.bucket, Keys.storyboard(job)))
        deps = with_quality(deps, board)
        with tempfile.TemporaryDirectory(prefix="reelforge-derived-") as tmp:
            work = Path(tmp)
            film = deps.store.get_file(deps.bucket, Keys.film(job, version), work / "final.mp4")
            try:
                made = _derive(event, film, board, work, deps)
            except InvalidInput as exc:  # the film cannot give it (no sound, no speech): said, not retried
                record = {"rendition": event.rendition.model_dump(), "error": str(exc)}
            else:
                key = Keys.derived(job, version, rid, made.suffix)
                deps.store.put_file(deps.bucket, key, made, MEDIA_TYPES[made.suffix])
                size = made.stat().st_size
                record = {"rendition": event.rendition.model_dump(), "key": key, "size_bytes": size}
        deps.store.put_json(deps.bucket, record_key, record)
    record = deps.store.get_json(deps.bucket, record_key)
    if "error" in record:
        return [RenditionFailed.follow(event, rendition_id=rid, request=event.request, error=record["error"])]
    stored = {"key": record["key"], "size_bytes": record["size_bytes"]}
    return [RenditionEncoded.follow(event, rendition_id=rid, request=event.request, **stored)]
