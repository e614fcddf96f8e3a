"""Encoder handlers: frames -> segment MP4 (SegmentEncoded); FilmRequested -> the film (FilmEncoded).

Outputs have deterministic keys and are checked before work, so a redelivered event re-announces
what is stored instead of encoding it again. The film's metadata object is written after the film:
it marks a finished film.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from reelforge_encoder.ffmpeg import Codec, FilmPart, compile_film, encode_frames
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import Event, FilmEncoded, FilmRequested, SegmentEncoded, SegmentGenerated
from reelforge_shared.media import probe
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard


@dataclass(slots=True)
class EncoderDeps:
    store: ObjectStore
    bucket: str
    codec: Codec
    film_fps: float | None = None


def handle_segment(event: SegmentGenerated, deps: EncoderDeps) -> list[Event]:
    """Encode a segment's frames at the delivery size, unless its MP4 is already stored."""
    job, n = event.job_id, event.index
    key = Keys.segment_video(job, n)
    if not deps.store.exists(deps.bucket, key):
        frame_keys = deps.store.list_keys(deps.bucket, event.frames_prefix)
        if len(frame_keys) != event.frame_count:
            raise PermanentError(f"segment {n}: {len(frame_keys)} frames stored under {event.frames_prefix}, expected {event.frame_count}")
        with tempfile.TemporaryDirectory(prefix="reelforge-enc-") as tmp:
            frames = Path(tmp, "frames")
            frames.mkdir()
            for i, frame_key in enumerate(frame_keys):
                deps.store.get_file(deps.bucket, frame_key, frames / f"{i:04d}.png")
            video = encode_frames(frames, event.fps, event.width, event.height, Path(tmp, "segment.mp4"), deps.codec)
            deps.store.put_file(deps.bucket, key, video, "video/mp4")
    return [
        SegmentEncoded(
            job_id=job, index=n, segment_id=event.segment_id, attempt=event.attempt, video_key=key,
            frame_count=event.frame_count, fps=event.fps, width=event.width, height=event.height,
            duration_s=event.frame_count / event.fps, model=event.model,
        )
    ]


def handle_film(event: FilmRequested, deps: EncoderDeps) -> list[Event]:
    """Compile the film once from the delivered segments, with the storyboard's transitions."""
    job = event.job_id
    meta_key = f"{Keys.film(job)}.json"
    if not deps.store.exists(deps.bucket, meta_key):
        board = parse_storyboard(deps.store.get_json(deps.bucket, Keys.storyboard(job)))
        fps = deps.film_fps or max(s.fps for s in board.segments)
        with tempfile.TemporaryDirectory(prefix="reelforge-film-") as tmp:
            parts = []
            for n, seg in enumerate(board.segments, start=1):
                path = deps.store.get_file(deps.bucket, Keys.segment_video(job, n), Path(tmp, f"{n:03d}.mp4"))
                parts.append(FilmPart(path, seg.frames, seg.fps, seg.transition.type, seg.transition.duration))
            film = compile_film(parts, fps, board.output.width, board.output.height, Path(tmp, "final.mp4"), deps.codec)
            info = probe(film)
            deps.store.put_file(deps.bucket, Keys.film(job), film, "video/mp4")
        meta = {"frame_count": info.frame_count, "fps": info.fps, "duration_s": info.duration_s, "width": info.width, "height": info.height}
        deps.store.put_json(deps.bucket, meta_key, meta)
    meta = deps.store.get_json(deps.bucket, meta_key)
    return [FilmEncoded(job_id=job, film_key=Keys.film(job), **meta)]
