"""What happens between frames of the compiled film: cuts, dissolves, flash frames, light at the joins.

The film is decoded once to 64x36 colour thumbnails (enough to see a cut or a flash; 44 MB for a
4:24 film at 24 fps). A *step* is the mean absolute difference between one frame and the next
(0..255, all channels).

- hard cut: one step of at least 12 levels that is 2.5 times larger than the steps on either side
  of it. A dissolve spreads the same change over P steps of about equal size, so no step stands
  out; a flash frame makes two large steps side by side, so neither stands out either.
- flash frame: a frame whose mean luminance is at least 12 levels off the mean of its two
  neighbours (half the level at which the flicker gate scores 0), while the neighbours agree with
  each other to within half of that.
- at a boundary the film was asked to cut or dissolve at, the largest step in the window around
  it says which happened: a hard cut there where a dissolve was asked is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

THUMB = (64, 36)
CUT_LEVEL = 12.0  # a step below this is motion, whatever its neighbours
CUT_RATIO = 2.5
STEP_FLOOR = 2.0  # neighbours below this count as this (sensor noise), so a cut after a still frame is not infinite
FLASH_LEVEL = 12.0
QUIET = 6.0  # a boundary whose whole window changes less than this shows no join at all
FILM_EDGE = 3  # frames either side of a join (outside any dissolve) whose light is compared


@dataclass(slots=True)
class FilmFrames:
    fps: float
    thumbs: list[np.ndarray]  # BGR uint8, THUMB sized
    luma: np.ndarray
    steps: np.ndarray  # steps[k]: frame k -> k+1


def read_film(path: Path) -> FilmFrames:
    thumbs: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        for frame in container.decode(stream):
            thumbs.append(frame.reformat(width=THUMB[0], height=THUMB[1], format="bgr24", interpolation="AREA").to_ndarray())
    return film_frames(thumbs, fps)


def film_frames(thumbs: list[np.ndarray], fps: float) -> FilmFrames:
    weights = np.array([0.114, 0.587, 0.299])  # BT.601 luma of B, G, R
    luma = np.array([float(np.mean(t @ weights)) for t in thumbs])
    steps = np.array([step(a, b) for a, b in zip(thumbs, thumbs[1:], strict=False)])
    return FilmFrames(fps=fps, thumbs=thumbs, luma=luma, steps=steps)


def step(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def is_cut(steps: np.ndarray, k: int, level: float = CUT_LEVEL) -> bool:
    """Is the step from frame k to k+1 a hard cut?"""
    if steps[k] < level:
        return False
    before = steps[k - 1] if k > 0 else 0.0
    after = steps[k + 1] if k + 1 < len(steps) else 0.0
    return bool(steps[k] >= CUT_RATIO * max(before, after, STEP_FLOOR))


def detect_cuts(film: FilmFrames) -> list[int]:
    """Frames that start a new shot by a hard cut."""
    return [k + 1 for k in range(len(film.steps)) if is_cut(film.steps, k)]


def flash_frames(film: FilmFrames) -> list[int]:
    found = []
    luma = film.luma
    for k in range(1, len(luma) - 1):
        deviation = abs(luma[k] - 0.5 * (luma[k - 1] + luma[k + 1]))
        if deviation >= FLASH_LEVEL and abs(luma[k - 1] - luma[k + 1]) <= 0.5 * deviation:
            found.append(k)
    return found


@dataclass(frozen=True, slots=True)
class JoinReading:
    detected: str  # "cut", "dissolve" or "none"
    cut_share: float  # the largest step's share of all change in the window (1 for a clean cut)
    largest_at: int  # frame the largest step lands on


def read_join(film: FilmFrames, frame: int, dissolve_frames: int) -> JoinReading:
    """How the film changes around ``frame`` (the incoming segment's first frame)."""
    reach = max(dissolve_frames, 1) + 2
    lo, hi = max(0, frame - reach), min(len(film.steps), frame + reach)
    window = film.steps[lo:hi]
    if not len(window):
        return JoinReading("none", 0.0, frame)
    k = lo + int(np.argmax(window))
    total = float(window.sum())
    share = float(film.steps[k] / total) if total else 0.0
    if total < QUIET:
        return JoinReading("none", share, k + 1)
    # At a known join the question is only how the change happened, so no level is asked of the step:
    # a cut between two shots of one place can be a small step, but it is still one step.
    return JoinReading("cut" if is_cut(film.steps, k, level=0.0) else "dissolve", round(share, 3), k + 1)
