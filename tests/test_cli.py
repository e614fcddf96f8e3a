"""`reelforge run` as a user runs it: embedded servers, progress, files in the output folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reelforge_shared.media import probe

STORYBOARD = """
title: Two shots
output: {width: 256, height: 144}
characters:
  hero: {description: a man in a blue shirt, seed: 1000}
segments:
  - {id: one, prompt: walks, characters: [hero], frames: 3, fps: 3}
  - {id: two, prompt: sits, characters: [hero], frames: 3, fps: 3, transition: {type: dissolve, duration: 0.5}}
"""


def _reelforge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reelforge.cli", *args], capture_output=True, text=True, env=env, timeout=600)


def test_invalid_storyboard_exits_2_naming_the_field(tmp_path: Path) -> None:
    board = tmp_path / "bad.yaml"
    board.write_text("segments:\n  - {id: a, prompt: x, characters: [ghost]}\n")
    result = _reelforge("run", str(board), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "segments[0].characters[0]" in result.stderr and "unknown character 'ghost'" in result.stderr


def test_missing_storyboard_file_is_a_clear_error(tmp_path: Path) -> None:
    result = _reelforge("run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "cannot read storyboard" in result.stderr


def test_run_writes_the_film_segments_and_report(tmp_path: Path, model_cache: Path) -> None:
    board = tmp_path / "board.yaml"
    board.write_text(STORYBOARD)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "REELFORGE_STEPS": "2", "REELFORGE_MODEL_CACHE_DIR": str(model_cache)}
    out = tmp_path / "out"
    result = _reelforge("run", str(board), "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "completed" and report["model"]["random_weights"]
    assert [(s["id"], s["status"], s["file"]) for s in report["segments"]] == [
        ("one", "delivered", "segments/001.mp4"), ("two", "delivered", "segments/002.mp4")
    ]
    assert set(report["segments"][0]["qa"]) >= {"technical", "sharpness", "exposure", "noise"}
    film = probe(out / "final.mp4")
    assert (film.width, film.height, film.frame_count) == (256, 144, 6)
    assert film.duration_s == pytest.approx(2.0, abs=0.01) == report["film"]["duration_s"]
    assert probe(out / "segments" / "002.mp4").frame_count == 3
    assert "delivered" in result.stderr and "done" in result.stderr
