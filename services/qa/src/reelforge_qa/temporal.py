"""Temporal gates on every frame of a segment: flicker (luminance) and smoothness (motion).

- flicker: how far one frame's mean luminance stands out from its neighbours. The deviation from
  the median of the five frames around it ignores a steady fade and a single change of light (the
  median follows both) and catches a frame that jumps and comes back (not the first or last frame:
  nothing on one side tells a flash from a change of light there). 24 luma levels (about 10 %
  of the range) is an unmistakable flash: the score reaches 0 there.
- smoothness: whether each frame can be reached from the one before by motion. Dense optical flow
  (Farneback) warps the next frame back onto the previous one; the residual that motion cannot
  explain, relative to the picture's own contrast, is near 0.1 for real motion and near 1 for
  unrelated frames (two independent pictures differ by about their contrast). The worst pair counts:
  one jump is visible however smooth the rest is.
"""

from __future__ import annotations

import cv2
import numpy as np

FLASH_LEVELS = 24.0


def luma_deviations(luma: list[float]) -> np.ndarray:
    """Per frame: |luma - median of the frames around it|, in a window centred on it (5 frames, 3 near the
    ends; the first and last frame have no centred window and read 0: a fade would look like a jump there)."""
    values = np.asarray(luma, np.float64)
    out = np.zeros_like(values)
    for k in range(len(values)):
        half = min(2, k, len(values) - 1 - k)
        if half:
            out[k] = abs(values[k] - float(np.median(values[k - half : k + half + 1])))
    return out


def flicker(luma: list[float]) -> tuple[float, int | None]:
    """Score in [0, 1] and the frame that stands out most (None when nothing does)."""
    dev = luma_deviations(luma)
    if not len(dev) or float(dev.max()) == 0.0:
        return 1.0, None
    worst = int(dev.argmax())
    return float(np.clip(1.0 - dev[worst] / FLASH_LEVELS, 0.0, 1.0)), worst


def motion_residual(prev: np.ndarray, nxt: np.ndarray) -> float:
    """What optical flow cannot explain, relative to contrast: ~0.1 for motion, ~1 for unrelated frames."""
    # OpenCV's stubs (some releases) have no overload with flow=None (no initial flow), which the C++ API takes.
    flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload, unused-ignore]
    h, w = prev.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(nxt, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    margin = 4  # the border reflects what left the picture: not evidence of a jump
    a = prev[margin:-margin, margin:-margin].astype(np.float32)
    b = warped[margin:-margin, margin:-margin].astype(np.float32)
    contrast = float(np.mean(np.abs(a - a.mean()))) + float(np.mean(np.abs(b - b.mean())))
    return float(np.mean(np.abs(a - b))) / (0.5 * contrast + 2.0)  # +2 levels: flat frames do not divide by 0


def smoothness(small: list[np.ndarray]) -> tuple[float, int | None]:
    """Score in [0, 1] and the frame the worst jump lands on (None for fewer than 2 frames)."""
    if len(small) < 2:
        return 1.0, None
    residuals = [motion_residual(a, b) for a, b in zip(small, small[1:], strict=False)]
    worst = int(np.argmax(residuals))
    return float(np.clip(1.0 - residuals[worst], 0.0, 1.0)), worst + 1
