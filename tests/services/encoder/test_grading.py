"""Colour: the media guide's grades move contrast, saturation, warmth and brightness the way they say; normalisation
moves a segment's light toward the storyboard's colour temperature. Measured on real encodes, read back with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, Look, encode_frames, ffmpeg_exe
from reelforge_encoder.grading import GRADES, normalisation
from reelforge_encoder.look import sample_frames, segment_look
from reelforge_shared.colour import cct_of_linear_rgb, grey_world_rgb, light_linear_rgb
from reelforge_shared.storyboard import parse_storyboard

CODEC = Codec(ffmpeg_exe(), crf=12, preset="ultrafast")  # near-lossless: measure the filters, not the codec


def _chart(folder: Path, tint: np.ndarray | None = None) -> Path:
    """Two frames of a colour chart: a grey ramp over hue bars, optionally lit by a tinted light (linear gains)."""
    folder.mkdir()
    ramp = np.tile(np.linspace(0.1, 0.9, 128)[None, :, None], (36, 1, 3))
    hues = np.array([[0.8, 0.3, 0.3], [0.3, 0.7, 0.3], [0.3, 0.3, 0.8], [0.8, 0.7, 0.3]])
    bars = np.repeat(np.repeat(hues[None], 36, axis=0), 32, axis=1)
    srgb = np.concatenate([ramp, bars], axis=0)
    if tint is not None:
        # Exposed down so no channel clips: the grey-world estimate leaves clipped pixels out.
        lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4) * tint / tint.max()
        srgb = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.clip(lin, 0, 1) ** (1 / 2.4) - 0.055)
    for i in range(2):
        Image.fromarray(np.clip(srgb * 255 + 0.5, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def _stats(video: Path) -> dict[str, float]:
    with av.open(str(video)) as container:
        rgb = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(float) / 255
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722])
    return {
        "contrast": float(luma[: rgb.shape[0] // 2].std()),  # spread of the grey ramp
        "saturation": float((rgb.max(axis=2) - rgb.min(axis=2))[rgb.shape[0] // 2 :].mean()),  # of the hue bars
        "warmth": float(rgb[..., 0].mean() - rgb[..., 2].mean()),
        "brightness": float(luma.mean()),
    }


@pytest.fixture(scope="module")
def ungraded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    tmp = tmp_path_factory.mktemp("chart")
    frames = _chart(tmp / "f")
    return frames, _stats(encode_frames(frames, 3, 256, 144, tmp / "plain.mp4", CODEC))


@pytest.mark.parametrize("grade", sorted(GRADES))
def test_grade_moves_the_picture_the_way_its_numbers_say(
    grade: str, ungraded: tuple[Path, dict[str, float]], tmp_path: Path
) -> None:
    frames, before = ungraded
    after = _stats(encode_frames(frames, 3, 256, 144, tmp_path / "graded.mp4", CODEC, Look(grade=grade)))
    spec = GRADES[grade]
    if spec["contrast"] != 1:
        assert np.sign(after["contrast"] - before["contrast"]) == np.sign(spec["contrast"] - 1)
    assert np.sign(after["saturation"] - before["saturation"]) == np.sign(spec["saturation"] - 1)
    if abs(spec["temperature"] - 6500) > 300:  # below 6500 K warms, above cools
        assert np.sign(after["warmth"] - before["warmth"]) == np.sign(6500 - spec["temperature"])
    if spec["gamma"] != 1:  # gamma above 1 lifts the mid-tones
        assert np.sign(after["brightness"] - before["brightness"]) == np.sign(spec["gamma"] - 1)


def test_colour_temperature_estimate_recovers_blackbody_light() -> None:
    for kelvin in (2700, 3200, 4500, 5750, 6500, 9000):
        assert cct_of_linear_rgb(light_linear_rgb(kelvin)) == pytest.approx(kelvin, rel=0.03)
    assert cct_of_linear_rgb([1.0, 1.0, 1.0]) == pytest.approx(6504, abs=30)  # sRGB white is D65


def test_normalisation_keeps_luminance_and_corrects_only_the_light() -> None:
    warm = light_linear_rgb(3200) * 0.2
    n = normalisation(warm, 5750)
    corrected = warm * np.array(n.gains)
    assert cct_of_linear_rgb(corrected) == pytest.approx(5750, rel=0.03)
    assert float(corrected @ [0.2126, 0.7152, 0.0722]) == pytest.approx(float(warm @ [0.2126, 0.7152, 0.0722]), rel=1e-3)


def test_normalisation_moves_a_warm_segment_toward_the_storyboard_temperature(tmp_path: Path) -> None:
    frames = _chart(tmp_path / "warm", tint=light_linear_rgb(3200) / light_linear_rgb(6500))  # a tungsten-lit take, about 3200 K
    before = cct_of_linear_rgb(grey_world_rgb(sample_frames(frames)))
    board = parse_storyboard({"style": {"color_temperature_k": 5750}, "segments": [{"id": "a", "prompt": "x", "frames": 2}]})
    look = segment_look(board, board.segments[0], frames)
    assert look.normalise is not None
    assert look.normalise.estimated_k == pytest.approx(before)
    video = encode_frames(frames, 3, 256, 144, tmp_path / "normalised.mp4", CODEC, look)
    after = cct_of_linear_rgb(grey_world_rgb(sample_frames(video)))
    assert before == pytest.approx(3200, abs=400)
    assert abs(after - 5750) < 500 < abs(before - 5750)  # from about 3200 K to within 500 K of the target
