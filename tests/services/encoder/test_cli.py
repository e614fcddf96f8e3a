"""`reelforge encode`: the encoder on local files, without the bus."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from reelforge.cli_encode import encode
from reelforge_encoder.ffmpeg import ffmpeg_exe
from reelforge_shared.media import probe

app = typer.Typer()
app.command()(encode)


def _frames(folder: Path, count: int, colour: tuple[int, int, int]) -> Path:
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.full((36, 64, 3), colour, np.uint8)).save(folder / f"shot_{i + 1:02d}.png")  # not 0000.png
    return folder


def test_encode_frame_folders_into_a_film_with_deliverables(tmp_path: Path) -> None:
    a, b = _frames(tmp_path / "a", 6, (200, 120, 60)), _frames(tmp_path / "b", 3, (60, 120, 200))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            str(a),
            str(b),
            "--out",
            str(out),
            "--size",
            "160x90",
            "--transition",
            "fade:1",
            "--output-fps",
            "6",
            "--grade",
            "action",
            "--temperature",
            "5750",
            "--preset",
            "low",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "final.json",
        "final.mp4",
        "final_1x1.mp4",
        "final_9x16.mp4",
        "final_thumbnail.jpg",
        "segments",
    ]
    assert [probe(p).frame_count for p in sorted((out / "segments").iterdir())] == [12, 6]  # 2 s and 1 s at 6 fps
    film = probe(out / "final.mp4")
    assert (film.width, film.height, film.fps, film.frame_count, film.has_audio) == (160, 90, 6, 18, False)
    meta = json.loads((out / "final.json").read_text())
    assert meta["deliverables"] == {"9x16": "final_9x16.mp4", "1x1": "final_1x1.mp4", "thumbnail": "final_thumbnail.jpg"}


def test_encode_follows_a_storyboard_with_paths_relative_to_it(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    video = shots / "one.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=128x72:r=4:d=2", "-pix_fmt", "yuv420p", str(video)],
        check=True,
    )
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(shots / "one.wav")],
        check=True,
    )
    board = tmp_path / "board.yaml"
    board.write_text(
        "output: {width: 128, height: 72}\ndeliverables: {crops: [], thumbnail: false}\n"
        "segments:\n  - {id: one, prompt: test card, audio: shots/one.wav}\n  - {id: two, prompt: again, transition: dissolve}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [str(video), str(video), "--storyboard", str(board), "--out", str(out), "--preset", "low"])
    assert result.exit_code == 0, result.output
    film = probe(out / "final.mp4")
    assert (film.frame_count, film.fps, film.has_audio) == (16, 4, True)  # two 2 s videos at their own 4 fps
    assert not (out / "final_9x16.mp4").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--transition", "wipe:1"], "segments[1].transition.type"),
        (["--grade", "noir"], "style.grade"),
        (["--size", "big"], "--size wants WIDTHxHEIGHT"),
        (["--transition", "dissolve:soon"], "--transition wants cut"),
        (["--preset", "ultra"], "--preset must be low, medium or high"),
    ],
)
def test_encode_refuses_a_bad_description_naming_it(tmp_path: Path, args: list[str], message: str) -> None:
    a, b = _frames(tmp_path / "a", 2, (0, 0, 0)), _frames(tmp_path / "b", 2, (0, 0, 0))
    result = CliRunner().invoke(app, [str(a), str(b), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert message in result.output
