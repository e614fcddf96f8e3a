"""QA scores react to what a viewer would notice, and the technical gate reads the file back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from reelforge_encoder.ffmpeg import Codec, encode_frames, ffmpeg_exe
from reelforge_qa.gates import Thresholds, exposure, noise, sharpness
from reelforge_qa.scores import Expected, score_video

RNG = np.random.default_rng(0)


def _scene() -> np.ndarray:
    """A textured grey frame: edges and mid tones, like a real shot."""
    img = np.full((360, 640), 120, np.uint8)
    for x in range(0, 640, 40):
        cv2.rectangle(img, (x, 60), (x + 20, 300), int(60 + x % 120), -1)
    return img


def test_blur_lowers_sharpness() -> None:
    scene = _scene()
    assert sharpness(scene) > 0.5 > sharpness(cv2.GaussianBlur(scene, (0, 0), 8))


def test_overexposure_and_black_frames_fail_exposure() -> None:
    assert exposure(_scene()) > 0.9
    assert exposure(np.full((360, 640), 255, np.uint8)) < 0.1
    assert exposure(np.zeros((360, 640), np.uint8)) < 0.1


def test_grain_lowers_the_noise_score() -> None:
    scene = _scene()
    grainy = np.clip(scene + RNG.normal(0, 25, scene.shape), 0, 255).astype(np.uint8)
    assert noise(scene) > 0.9 > 0.5 > noise(grainy)


def test_technical_gate_catches_a_wrong_size(tmp_path: Path) -> None:
    frames = tmp_path / "f"
    frames.mkdir()
    for i in range(6):
        cv2.imwrite(str(frames / f"{i:04d}.png"), cv2.cvtColor(_scene(), cv2.COLOR_GRAY2BGR))
    video = encode_frames(frames, 3, 320, 180, tmp_path / "s.mp4", Codec(ffmpeg_exe()))
    good = score_video(video, Expected(320, 180, 3, 6), Thresholds())
    assert good.passed
    assert good.gates["technical"].score == 1.0
    assert good.measured["codec"] == "h264"
    wrong = score_video(video, Expected(1920, 1080, 3, 6), Thresholds())
    assert not wrong.passed
    assert "resolution" in wrong.gates["technical"].detail
