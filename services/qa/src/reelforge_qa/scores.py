"""Per-segment scoring: the technical gate read back from the file, then every gate of the registry.

- technical: resolution, frame rate, frame count, duration, codec and audio match what was asked;
- the picture gates (sharpness, exposure, noise, blockiness, flicker, smoothness): the table in
  :mod:`reelforge_qa.gates`, each a score in [0, 1] (1 is good) with a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reelforge_qa.frames import read_frames
from reelforge_qa.gates import TECHNICAL, Thresholds, quality_gates
from reelforge_shared.events import QaGate, QaReport
from reelforge_shared.media import probe


@dataclass(frozen=True, slots=True)
class Expected:
    width: int
    height: int
    fps: float
    frame_count: int
    audio: bool = False  # a segment has sound only when it brought some (a model's, narration, an audio file)


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


def score_video(path: Path, expected: Expected, thresholds: Thresholds, sample: int = 24) -> QaReport:
    """All per-segment gates of one video; ``measured`` holds what was read back from the file."""
    technical, measured = technical_gate(path, expected)
    frames = read_frames(path, sample, int(measured["frame_count"]))
    gates = {TECHNICAL: technical, **quality_gates(frames, thresholds)}
    measured |= {
        "frames_scored": len(frames.work_gray),
        "frames_decoded": len(frames.luma),
        "mean_luma": round(float(np.mean(frames.luma)), 2) if frames.luma else 0.0,
    }
    return QaReport(passed=all(g.passed for g in gates.values()), gates=gates, measured=measured)
