"""Motion interpolation: a 3 fps segment becomes a smooth clip at a higher rate, with the same duration."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, Look, encode_frames, ffmpeg_exe, interpolated_frames
from reelforge_encoder.look import film_fps, segment_rate
from reelforge_shared.media import probe
from reelforge_shared.storyboard import parse_storyboard

CODEC = Codec(ffmpeg_exe(), preset="ultrafast")
STEP = 12  # pixels the square moves between two generated frames


def _moving_square(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        frame = np.full((72, 128, 3), 30, np.uint8)
        frame[26:46, 10 + i * STEP : 30 + i * STEP] = 230
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return folder


def _square_x(path: Path) -> list[float]:
    """The bright square's horizontal centre in each frame (brightness-weighted, at the generation scale)."""
    centres = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray", width=128, height=72).astype(float)
            weight = np.clip(luma - 60, 0, None).sum(axis=0)
            centres.append(float((weight * np.arange(128)).sum() / weight.sum()))
    return centres


@pytest.mark.parametrize("mode", ["mci", "blend"])
def test_interpolation_turns_3fps_into_a_smooth_24fps_clip_of_the_same_duration(tmp_path: Path, mode: str) -> None:
    frames = _moving_square(tmp_path / "f", 6)
    plain = encode_frames(frames, 3, 256, 144, tmp_path / "plain.mp4", CODEC)
    smooth = encode_frames(frames, 3, 256, 144, tmp_path / "smooth.mp4", CODEC, Look(fps=24, interpolation=mode))
    info = probe(smooth)
    assert (info.fps, info.frame_count) == (24, 48)
    assert info.duration_s == pytest.approx(2.0, abs=0.01)
    assert probe(plain).duration_s == pytest.approx(info.duration_s, abs=0.01)
    steps = np.abs(np.diff(_square_x(smooth)))
    assert np.abs(np.diff(_square_x(plain))).max() == pytest.approx(STEP, abs=1.0)  # 3 fps: the square jumps
    assert steps.max() < STEP / 2  # 24 fps: it moves in small steps, where the plain clip jumps 12 px at once
    assert steps[:40].sum() == pytest.approx(5 * STEP, abs=3)  # and still gets as far, in the same time


def test_interpolated_rates_keep_every_segment_duration() -> None:
    assert interpolated_frames(24, 3, 24) == 192
    assert interpolated_frames(5, 2, 24) == 60
    board = parse_storyboard(
        {
            "output": {"fps": 24},
            "segments": [{"id": "a", "prompt": "x", "frames": 24, "fps": 3}, {"id": "b", "prompt": "y", "frames": 48, "fps": 24}],
        }
    )
    assert segment_rate(board, 24, 3) == (192, 24)
    assert segment_rate(board, 48, 24) == (48, 24)
    assert film_fps(board) == 24
    plain = parse_storyboard({"segments": [{"id": "a", "prompt": "x", "frames": 24, "fps": 3}]})
    assert segment_rate(plain, 24, 3) == (24, 3)
    assert film_fps(plain) == 3
