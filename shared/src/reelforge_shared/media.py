"""Read a video back from the file (PyAV): what the encoder produced, what QA checks, what tests assert."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av


@dataclass(frozen=True, slots=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    frame_count: int
    duration_s: float
    has_audio: bool


def probe(path: Path | str, count_frames: bool = True) -> VideoInfo:
    """Container facts; with ``count_frames`` the frames are counted by demuxing (exact, no decode)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        frames = stream.frames
        if count_frames or not frames:
            frames = sum(1 for packet in container.demux(stream) if packet.size)
        duration = float(container.duration / av.time_base) if container.duration else (frames / fps if fps else 0.0)
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            codec=stream.codec_context.name,
            pix_fmt=stream.codec_context.pix_fmt or "",
            frame_count=frames,
            duration_s=duration,
            has_audio=bool(container.streams.audio),
        )
