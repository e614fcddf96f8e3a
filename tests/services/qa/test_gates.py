"""The new per-segment gates (blockiness, flicker, smoothness, audio) and the colour-temperature estimate."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from reelforge_qa.frames import blockiness
from reelforge_qa.gates import GATES, TECHNICAL, Thresholds
from reelforge_qa.scores import Expected, score_video
from reelforge_qa.synthetic import Shot, encode, render_shot
from reelforge_qa.temporal import flicker, motion_residual, smoothness
from reelforge_shared.colour import colour_temperature_rgb, light_linear_rgb, linear_to_srgb, mired

GREY_CARD = np.full((90, 160, 3), 0.18)  # linear mid-grey: the light's colour is all the estimate sees


def _shot_grey(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (160, 90), interpolation=cv2.INTER_AREA) for f in frames]


def test_blockiness_separates_heavy_jpeg_from_clean() -> None:
    frame = cv2.cvtColor(render_shot(Shot(), 1)[0], cv2.COLOR_BGR2GRAY)
    frame = cv2.resize(frame, (960, 540), interpolation=cv2.INTER_CUBIC)  # a smooth, upscaled picture: blocks show plainly
    clean = cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], cv2.IMREAD_GRAYSCALE)
    blocky = cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], cv2.IMREAD_GRAYSCALE)
    assert blockiness(clean) > 0.8 > 0.5 > blockiness(blocky)


def test_blockiness_ignores_edges_that_sit_on_the_grid() -> None:
    """A wall of planks every 24 pixels (on the 8-pixel grid) is picture, not compression."""
    wall = np.full((180, 320), 120, np.uint8)
    wall[:, 23::24] = 40
    assert blockiness(wall) > 0.9


def test_flicker_finds_the_flash_and_ignores_a_fade() -> None:
    fade = [100.0 - 6 * i for i in range(12)]
    assert flicker(fade) == (1.0, None)
    flashed = fade.copy()
    flashed[5] += 40
    score, frame = flicker(flashed)
    assert score == 0.0
    assert frame == 5


def test_smoothness_tells_motion_from_jumps() -> None:
    walking = _shot_grey(render_shot(Shot(), 8))
    assert smoothness(walking)[0] > 0.85
    field, barn = _shot_grey(render_shot(Shot(), 1)), _shot_grey(render_shot(Shot(location="barn"), 1))
    assert motion_residual(field[0], barn[0]) > 0.8  # unrelated pictures: about their whole contrast unexplained
    score, frame = smoothness(walking[:4] + barn + walking[4:])
    assert score < 0.2
    assert frame in (4, 5)  # the jump into the barn frame or back out of it


@pytest.mark.parametrize("kelvin", [2800, 3200, 4300, 5600, 6500])
def test_colour_temperature_of_a_grey_card_under_black_body_light(kelvin: float) -> None:
    frame = (linear_to_srgb(GREY_CARD * light_linear_rgb(kelvin)) * 255 + 0.5).astype(np.uint8)
    estimate = colour_temperature_rgb([frame])
    assert abs(mired(estimate) - mired(kelvin)) < 5  # 5 mired: well below a visible shift (about 20)


def test_technical_gate_reads_audio_back(tmp_path: Path) -> None:
    video = encode(render_shot(Shot(), 4), 4, tmp_path / "s.mp4")
    silent = score_video(video, Expected(320, 180, 4, 4), Thresholds())
    assert silent.gates["technical"].passed
    assert silent.measured["audio"] == 0
    wanted = score_video(video, Expected(320, 180, 4, 4, audio=True), Thresholds())
    assert not wanted.gates["technical"].passed
    assert "audio" in wanted.gates["technical"].detail


def test_score_video_reports_every_gate_with_its_threshold(tmp_path: Path) -> None:
    video = encode(render_shot(Shot(), 8), 4, tmp_path / "s.mp4")
    report = score_video(video, Expected(320, 180, 4, 8), Thresholds())
    assert list(report.gates) == [TECHNICAL, *(gate.name for gate in GATES)]  # the registry's rows, in its order
    assert report.passed
    assert report.gates["smoothness"].threshold == Thresholds()["smoothness"]
    assert report.measured["frames_decoded"] == 8
