"""What the storyboard asks of a segment's picture and timing: normalisation, grade, frame rate."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from reelforge_encoder.ffmpeg import Look, interpolated_frames
from reelforge_encoder.grading import normalisation
from reelforge_shared.colour import grey_world_rgb
from reelforge_shared.storyboard import Segment, Storyboard

SAMPLE_FRAMES = 8  # the light of a segment changes slowly: 8 evenly spaced frames estimate it as well as all 24
SAMPLE_WIDTH = 64  # a mean colour needs no detail; 64 px wide makes reading 1080p frames cheap


def _evenly(items: list, count: int) -> list:
    if len(items) <= count:
        return items
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def sample_frames(source: Path) -> list[np.ndarray]:
    """A few evenly spaced RGB frames, small, from a folder of PNG frames or a video file."""
    if source.is_dir():
        frames = []
        for path in _evenly(sorted(source.glob("*.png")), SAMPLE_FRAMES):
            with Image.open(path) as image:
                rgb = image.convert("RGB")
                height = max(1, round(rgb.height * SAMPLE_WIDTH / rgb.width))
                frames.append(np.asarray(rgb.resize((SAMPLE_WIDTH, height), Image.Resampling.BILINEAR)))
        return frames
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        height = max(2, round(stream.codec_context.height * SAMPLE_WIDTH / stream.codec_context.width))
        decoded = [f.to_ndarray(format="rgb24", width=SAMPLE_WIDTH, height=height) for f in container.decode(stream)]
    return _evenly(decoded, SAMPLE_FRAMES)


def segment_look(board: Storyboard, seg: Segment, source: Path) -> Look:
    """The segment's Look: normalised toward the style's colour temperature (when set), graded, interpolated."""
    target = board.style.color_temperature_k
    normalise = normalisation(grey_world_rgb(sample_frames(source)), target) if target else None
    fps = board.output.fps if board.output.fps and board.output.fps > seg.fps else None
    return Look(normalise=normalise, grade=board.style.grade, fps=fps, interpolation=board.output.interpolation)


def segment_rate(board: Storyboard, frames: int, fps: float) -> tuple[int, float]:
    """Frames and rate of an encoded segment: raised to ``output.fps`` when that is higher, same duration."""
    out = board.output.fps
    return (interpolated_frames(frames, fps, out), out) if out and out > fps else (frames, fps)


def film_fps(board: Storyboard) -> float:
    """The film's rate: the delivery rate when set, else the fastest segment's (slower ones hold frames)."""
    return board.output.fps or max(s.fps for s in board.segments)
