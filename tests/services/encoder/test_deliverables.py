"""Deliverables from one master: 9:16 and 1:1 crops, a thumbnail, a logo, and a size budget met by the rate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.deliverables import MB, budget_kbps, crop_size
from reelforge_encoder.ffmpeg import Codec, encode_frames, ffmpeg_exe
from reelforge_encoder.film_assembly import make_film
from reelforge_shared.media import probe
from reelforge_shared.storage import DeliveryKeys, Keys
from reelforge_shared.storyboard import parse_storyboard

CODEC = Codec(ffmpeg_exe(), preset="ultrafast")


def _segment(tmp_path: Path, name: str, noisy: bool = False) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(6):
        frame = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) if noisy else np.full((90, 160, 3), (40, 120, 200), np.uint8)
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return encode_frames(folder, 3, 320, 180, tmp_path / f"{name}.mp4", CODEC)


def _first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_crop_windows_keep_their_ratio_in_even_pixels() -> None:
    assert crop_size(1920, 1080, "9:16") == (606, 1080)
    assert crop_size(1920, 1080, "1:1") == (1080, 1080)
    assert crop_size(1080, 1920, "1:1") == (1080, 1080)
    assert crop_size(320, 180, "9:16") == (100, 180)


def test_deliverable_keys_sit_beside_the_film() -> None:
    assert Keys.film("j-1") == "jobs/j-1/final.mp4"
    assert [Keys.deliverable("j-1", n) for n in ("9x16", "1x1", "thumbnail")] == [
        "jobs/j-1/final_9x16.mp4",
        "jobs/j-1/final_1x1.mp4",
        "jobs/j-1/final_thumbnail.jpg",
    ]
    assert DeliveryKeys.deliverable("j-1", "9x16") == "j-1/final_9x16.mp4"


def test_film_deliverables_are_cut_from_the_master_with_the_logo_and_the_sound(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    Image.fromarray(np.full((20, 40, 3), (255, 0, 0), np.uint8)).save(logo)
    tone = tmp_path / "tone.wav"
    subprocess.run([CODEC.exe, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(tone)], check=True)
    board = parse_storyboard(
        {
            "output": {"width": 320, "height": 180},
            "deliverables": {"logo": str(logo)},
            "segments": [{"id": "a", "prompt": "x", "frames": 6, "fps": 3, "audio": str(tone)}],
        }
    )
    work = tmp_path / "work"
    work.mkdir()
    result = make_film(board, [_segment(tmp_path, "a")], work, CODEC, 3, lambda field, ref: Path(ref), None)
    assert set(result.deliverables) == {"9x16", "1x1", "thumbnail"}
    for name, size in [("9x16", (100, 180)), ("1x1", (180, 180))]:
        info = probe(result.deliverables[name])
        assert (info.width, info.height) == size
        assert info.has_audio
        assert info.frame_count == 6
        assert result.meta["deliverable_files"][name] | {"size_bytes": 0} == {
            "size_bytes": 0,
            "width": size[0],
            "height": size[1],
            "has_audio": True,
        }
    with Image.open(result.deliverables["thumbnail"]) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (320, 180)
        corner = np.asarray(thumb.convert("RGB"))[6:10, 8:20].mean(axis=(0, 1))
    for frame in (
        corner,
        *(
            _first_frame(p)[6:10, 8:20].mean(axis=(0, 1))
            for p in (result.film, result.deliverables["9x16"], result.deliverables["1x1"])
        ),
    ):
        assert frame[0] > 180
        assert frame[2] < 90  # the red logo in the top-left corner, over a blue picture
    assert _first_frame(result.film)[170:175, 300:310].mean(axis=(0, 1))[2] > 150  # and the picture elsewhere


def test_size_budget_is_met_by_lowering_the_rate(tmp_path: Path) -> None:
    segment = _segment(tmp_path, "noise", noisy=True)
    board = {
        "output": {"width": 320, "height": 180},
        "deliverables": {"crops": ["1:1"], "thumbnail": False},
        "segments": [{"id": "a", "prompt": "x", "frames": 6, "fps": 3}],
    }
    free_dir, capped_dir = tmp_path / "free", tmp_path / "capped"
    free_dir.mkdir(), capped_dir.mkdir()
    free = make_film(parse_storyboard(board), [segment], free_dir, CODEC, 3, lambda f, r: Path(r), None)
    budget_mb = free.film.stat().st_size / 3 / MB  # a third of what the quality preset spends
    capped = make_film(
        parse_storyboard(board | {"deliverables": {"crops": ["1:1"], "thumbnail": False, "max_film_mb": budget_mb}}),
        [segment],
        capped_dir,
        CODEC,
        3,
        lambda f, r: Path(r),
        None,
    )
    assert free.meta["video_kbps_cap"] is None
    assert capped.meta["video_kbps_cap"] is not None
    assert capped.film.stat().st_size <= budget_mb * MB
    assert capped.deliverables["1x1"].stat().st_size <= budget_mb * MB
    assert probe(capped.film).frame_count == 6  # the same film, at a lower rate
    assert budget_kbps(500 * MB, 264, 192) == pytest.approx(
        14_600, rel=0.01
    )  # the GPU brief: 4:24 under 500 MB leaves about 14.6 Mbit/s
