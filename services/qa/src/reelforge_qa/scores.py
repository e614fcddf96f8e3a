"""Per-segment gates, each a score in [0, 1] (1 is good) with a threshold, read back from the file.

- technical: resolution, frame rate, frame count, duration, codec and audio match what was asked;
- sharpness: variance of the Laplacian at a 640-pixel-wide working size, mapped v / (v + 100)
  (100 is where a frame starts to look soft at that size);
- exposure: penalises clipped pixels and a mean luminance far from mid-grey;
- noise: the median absolute residual after a 3x3 median filter (a robust sigma estimate),
  mapped 1 - sigma / 20;
- blockiness: compression blocks on the 8-pixel grid (:func:`reelforge_qa.frames.blockiness`);
- flicker and smoothness: frame-to-frame luminance jumps and jumps that motion cannot explain
  (:mod:`reelforge_qa.temporal`), over every frame.

Sharpness, blockiness and noise together are seed 000's "artifacts" gate; they stay separate so a
report says which artifact it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reelforge_qa.frames import FrameSet, read_frames
from reelforge_qa.temporal import flicker, smoothness
from reelforge_shared.events import QaGate, QaReport
from reelforge_shared.media import probe


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


@dataclass(frozen=True, slots=True)
class Expected:
    width: int
    height: int
    fps: float
    frame_count: int
    audio: bool = False  # a segment has sound only when it brought some (a model's, narration, an audio file)


@dataclass(frozen=True, slots=True)
class Thresholds:
    sharpness: float = 0.2
    exposure: float = 0.5
    noise: float = 0.5
    blockiness: float = 0.5  # grid steps 1.5x the texture beside them
    flicker: float = 0.5  # a frame 12 luma levels off its neighbours
    smoothness: float = 0.5  # half the picture's contrast unexplained by motion


def technical_gate(path: Path, expected: Expected) -> tuple[QaGate, dict[str, float | str | int]]:
    info = probe(path)
    duration = expected.frame_count / expected.fps
    checks = {
        "resolution": (info.width, info.height) == (expected.width, expected.height),
        "fps": abs(info.fps - expected.fps) < 0.01,
        "frames": info.frame_count == expected.frame_count,
        "duration": abs(info.duration_s - duration) <= 1.0 / expected.fps,
        "codec": info.codec in {"h264", "hevc"} and info.pix_fmt == "yuv420p",
        "audio": info.has_audio == expected.audio,
    }
    failed = [name for name, ok in checks.items() if not ok]
    gate = QaGate(
        score=sum(checks.values()) / len(checks),
        threshold=1.0,
        passed=not failed,
        detail="ok" if not failed else f"failed: {', '.join(failed)}",
    )
    measured: dict[str, float | str | int] = {
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frame_count": info.frame_count,
        "duration_s": round(info.duration_s, 3),
        "codec": info.codec,
        "pix_fmt": info.pix_fmt,
        "audio": int(info.has_audio),
    }
    return gate, measured


def _gate(score: float, threshold: float, detail: str) -> QaGate:
    score = round(float(np.clip(score, 0.0, 1.0)), 4)
    return QaGate(score=score, threshold=threshold, passed=score >= threshold, detail=detail)


def quality_gates(frames: FrameSet, thresholds: Thresholds) -> dict[str, QaGate]:
    """Every gate but the technical one, from one pass over the frames."""
    gates = {}
    per_frame = (("sharpness", sharpness), ("exposure", exposure), ("noise", noise))
    for name, fn in per_frame:
        values = [fn(f) for f in frames.work_gray] or [0.0]
        worst = int(np.argmin(values))
        at = frames.sampled_index[worst] if frames.sampled_index else 0
        gates[name] = _gate(float(np.mean(values)), getattr(thresholds, name), f"worst frame {at}: {values[worst]:.3f}")
    blocks = frames.block_scores or [1.0]
    worst = int(np.argmin(blocks))
    at = frames.sampled_index[worst] if frames.sampled_index else 0
    gates["blockiness"] = _gate(float(np.mean(blocks)), thresholds.blockiness, f"worst frame {at}: {blocks[worst]:.3f}")
    score, frame = flicker(frames.luma)
    gates["flicker"] = _gate(score, thresholds.flicker, "steady" if frame is None else f"frame {frame} stands out most")
    score, frame = smoothness(frames.small)
    gates["smoothness"] = _gate(score, thresholds.smoothness, "one frame" if frame is None else f"worst jump into frame {frame}")
    return gates


def score_video(path: Path, expected: Expected, thresholds: Thresholds, sample: int = 24) -> QaReport:
    """All per-segment gates of one video; ``measured`` holds what was read back from the file."""
    technical, measured = technical_gate(path, expected)
    frames = read_frames(path, sample, int(measured["frame_count"]))
    gates = {"technical": technical, **quality_gates(frames, thresholds)}
    measured |= {
        "frames_scored": len(frames.work_gray),
        "frames_decoded": len(frames.luma),
        "mean_luma": round(float(np.mean(frames.luma)), 2) if frames.luma else 0.0,
    }
    return QaReport(passed=all(g.passed for g in gates.values()), gates=gates, measured=measured)
