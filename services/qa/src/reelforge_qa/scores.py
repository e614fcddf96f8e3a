"""Per-frame scores in [0, 1] (1 is good) and the technical gate, from the decoded file.

- sharpness: variance of the Laplacian at a 640-pixel-wide working size, mapped v / (v + 100)
  (100 is where a frame starts to look soft at that size);
- exposure: penalises clipped pixels and a mean luminance far from mid-grey;
- noise: the median absolute residual after a 3x3 median filter (a robust sigma estimate),
  mapped 1 - sigma / 20.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from reelforge_shared.events import QaGate, QaReport
from reelforge_shared.media import probe

WORK_WIDTH = 640


def sharpness(gray: np.ndarray) -> float:
    variance = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return variance / (variance + 100.0)


def exposure(gray: np.ndarray) -> float:
    clipped = float(np.mean((gray <= 4) | (gray >= 251)))
    off_centre = max(0.0, abs(float(gray.mean()) - 118.0) - 60.0) / 68.0  # 58..178 is a fine mean
    return max(0.0, (1.0 - clipped) * (1.0 - off_centre))


def noise(gray: np.ndarray) -> float:
    residual = np.abs(gray.astype(np.int16) - cv2.medianBlur(gray, 3).astype(np.int16))
    sigma = 1.4826 * float(np.median(residual))
    return max(0.0, 1.0 - sigma / 20.0)


def sampled_gray_frames(path: Path, count: int, total: int) -> list[np.ndarray]:
    """``count`` evenly spaced frames of ``total``, grey, at the working width (only those are kept)."""
    if total <= 0:
        return []
    picks = set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())
    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in picks:
                gray = frame.to_ndarray(format="gray")
                height = round(gray.shape[0] * WORK_WIDTH / gray.shape[1])
                out.append(cv2.resize(gray, (WORK_WIDTH, height), interpolation=cv2.INTER_AREA))
    return out


@dataclass(frozen=True, slots=True)
class Expected:
    width: int
    height: int
    fps: float
    frame_count: int


@dataclass(frozen=True, slots=True)
class Thresholds:
    sharpness: float = 0.2
    exposure: float = 0.5
    noise: float = 0.5


def score_video(path: Path, expected: Expected, thresholds: Thresholds, sample: int = 24) -> QaReport:
    info = probe(path)
    duration = expected.frame_count / expected.fps
    checks = {
        "resolution": (info.width, info.height) == (expected.width, expected.height),
        "fps": abs(info.fps - expected.fps) < 0.01,
        "frames": info.frame_count == expected.frame_count,
        "duration": abs(info.duration_s - duration) <= 1.0 / expected.fps,
        "codec": info.codec in {"h264", "hevc"} and info.pix_fmt == "yuv420p",
    }
    failed = [name for name, ok in checks.items() if not ok]
    gates = {
        "technical": QaGate(
            score=sum(checks.values()) / len(checks), threshold=1.0, passed=not failed,
            detail="ok" if not failed else f"failed: {', '.join(failed)}",
        )
    }
    frames = sampled_gray_frames(path, sample, info.frame_count)
    for name, fn, threshold in (
        ("sharpness", sharpness, thresholds.sharpness),
        ("exposure", exposure, thresholds.exposure),
        ("noise", noise, thresholds.noise),
    ):
        values = [fn(f) for f in frames] or [0.0]
        mean, worst = float(np.mean(values)), float(np.min(values))
        gates[name] = QaGate(score=round(mean, 4), threshold=threshold, passed=mean >= threshold, detail=f"worst frame {worst:.3f}")
    measured = {
        "width": info.width, "height": info.height, "fps": info.fps, "frame_count": info.frame_count,
        "duration_s": round(info.duration_s, 3), "codec": info.codec, "pix_fmt": info.pix_fmt,
        "frames_scored": len(frames),
    }
    return QaReport(passed=all(g.passed for g in gates.values()), gates=gates, measured=measured)
