"""One decode pass over a video, keeping only what the gates need (never the full-size frames).

Every frame contributes a small grey copy (temporal gates: flicker, smoothness); evenly spaced
sampled frames contribute a grey copy at the working width (sharpness, exposure, noise), a
blockiness score measured at the native size (the codec's 8x8 grid only exists there) and a small
colour copy (continuity, colour temperature, thumbnails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

WORK_WIDTH = 640  # sharpness and noise are calibrated at this width
SMALL_WIDTH = 160  # temporal gates: enough for optical flow, cheap for 1080p films
COLOUR_WIDTH = 256  # continuity and colour temperature: a histogram needs no more
BLOCK = 8  # H.264 and JPEG transform blocks


def blockiness(gray: np.ndarray) -> float:
    """Score in [0, 1] (1 = no visible block grid), at the decoded size.

    Compression blocks show as steps on the 8-pixel grid: for each grid line, the mean absolute
    step across it is compared with the mean step between the pixel columns beside it. The median
    over grid lines ignores picture edges that happen to sit on the grid (a wall of planks); real
    blocking raises every line. A clean picture has a ratio near 1; a ratio of 2 means grid steps
    twice as strong as the picture's own texture, which is plainly visible, so the score reaches 0.
    """
    img = gray.astype(np.float32)
    ratios = []
    for diff in (np.abs(np.diff(img, axis=1)), np.abs(np.diff(img, axis=0).T)):
        # diff[:, i] is the step between pixel i and i+1; grid steps sit at i = 7, 15, ...
        lines = range(BLOCK - 1, diff.shape[1] - 1, BLOCK)
        if not lines:
            continue
        grid = diff[:, list(lines)].mean(axis=0)
        beside = 0.5 * (diff[:, [i - 1 for i in lines]].mean(axis=0) + diff[:, [i + 1 for i in lines]].mean(axis=0))
        ratios.append(float(np.median((grid + 2.0) / (beside + 2.0))))  # +2 levels: steps that small are invisible
    ratio = float(np.mean(ratios)) if ratios else 1.0
    return float(np.clip(2.0 - ratio, 0.0, 1.0))


def small_size(width: int, height: int, target: int) -> tuple[int, int]:
    """``target`` wide, the source's aspect, even height (swscale wants even sizes for yuv)."""
    h = max(2, round(height * target / width / 2) * 2)
    return target, h


@dataclass(slots=True)
class FrameSet:
    """What one pass over a video keeps."""

    width: int
    height: int
    fps: float
    luma: list[float] = field(default_factory=list)  # mean luma of every frame (0..255)
    small: list[np.ndarray] = field(default_factory=list)  # every frame, grey, SMALL_WIDTH wide
    sampled_index: list[int] = field(default_factory=list)
    work_gray: list[np.ndarray] = field(default_factory=list)  # sampled frames, grey, WORK_WIDTH wide
    colour: list[np.ndarray] = field(default_factory=list)  # sampled frames, BGR, COLOUR_WIDTH wide
    block_scores: list[float] = field(default_factory=list)  # sampled frames, at the decoded size


def sample_indices(total: int, count: int) -> list[int]:
    if total <= 0:
        return []
    return sorted(set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()))


def read_frames(path: Path, sample: int, total: int) -> FrameSet:
    """Decode ``path`` once; ``total`` is the demuxed frame count (for the sample positions)."""
    picks = set(sample_indices(total, sample))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = FrameSet(width, height, float(stream.average_rate or stream.guessed_rate or 0))
        sw, sh = small_size(width, height, SMALL_WIDTH)
        cw, ch = small_size(width, height, COLOUR_WIDTH)
        for i, frame in enumerate(container.decode(stream)):
            small = frame.reformat(width=sw, height=sh, format="gray", interpolation="AREA").to_ndarray()
            frames.small.append(small)
            frames.luma.append(float(small.mean()))
            if i in picks:
                gray = frame.to_ndarray(format="gray")
                frames.sampled_index.append(i)
                frames.block_scores.append(blockiness(gray))
                wh = round(gray.shape[0] * WORK_WIDTH / gray.shape[1])
                frames.work_gray.append(cv2.resize(gray, (WORK_WIDTH, wh), interpolation=cv2.INTER_AREA))
                frames.colour.append(frame.reformat(width=cw, height=ch, format="bgr24", interpolation="AREA").to_ndarray())
    return frames


@dataclass(slots=True)
class ColourSample:
    """Colour frames of a segment for the film-level checks."""

    frames: list[np.ndarray]  # evenly spaced, BGR, COLOUR_WIDTH wide
    head: list[np.ndarray]  # the first EDGE frames
    tail: list[np.ndarray]  # the last EDGE frames
    frame_count: int
    fps: float


EDGE = 3  # frames either side of a join that show its light (an eighth of a second at 24 fps, a second at 3 fps)


def colour_sample(path: Path, count: int) -> ColourSample:
    """Decode once, keep ``count`` evenly spaced colour frames and the frames at both ends."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        cw, ch = small_size(stream.codec_context.width, stream.codec_context.height, COLOUR_WIDTH)
        every = [
            f.reformat(width=cw, height=ch, format="bgr24", interpolation="AREA").to_ndarray() for f in container.decode(stream)
        ]
    picks = sample_indices(len(every), count)
    return ColourSample([every[i] for i in picks], every[:EDGE], every[-EDGE:], len(every), fps)
