"""`reelforge generate` and `reelforge bench` as a user runs them, on the CPU with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from reelforge.cli_generator import bench, generate
from reelforge_bench.run import _compare
from reelforge_shared.media import probe

app = typer.Typer()
app.command()(generate)
app.command()(bench)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> None:
    monkeypatch.setenv("REELFORGE_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("REELFORGE_GENERATOR_STEPS", "2")


@pytest.mark.slow  # renders and encodes a segment through the CLI
def test_generate_renders_one_segment_to_an_mp4(env: None, tmp_path: Path) -> None:
    out = tmp_path / "clips" / "segment.mp4"
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--prompt",
            "a man in a blue shirt",
            "--seed",
            "7",
            "--frames",
            "3",
            "--fps",
            "3",
            "--output",
            str(out),
            "--width",
            "256",
            "--height",
            "144",
        ],
    )
    assert result.exit_code == 0, result.output
    video = probe(out)
    assert (video.width, video.height, video.frame_count) == (256, 144, 3)
    assert video.duration_s == pytest.approx(1.0, abs=0.01)
    assert "rendered at 128x72 by reelforge/tiny-sd, random weights" in " ".join(result.output.split())


def test_generate_with_a_model_that_cannot_load_exits_1(env: None, tmp_path: Path) -> None:
    missing = str(tmp_path / "none")
    result = CliRunner().invoke(app, ["generate", "--prompt", "x", "--output", str(tmp_path / "s.mp4"), "--model", missing])
    assert result.exit_code == 1
    assert "cannot load model" in result.output
    assert not (tmp_path / "s.mp4").exists()


@pytest.mark.slow  # the benchmark command on the tiny model
def test_bench_on_the_cpu_compares_the_plain_pipeline_with_the_generator(env: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--model",
            "reelforge/tiny-sd",
            "--sizes",
            "64x64",
            "--steps",
            "2",
            "--frames",
            "3",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "bench.json").read_text())
    plain, ours = report["rows"]
    assert plain["settings"].startswith("plain pipeline")
    assert ours["settings"].startswith("reelforge (batched")
    assert (report["device"], report["dtype"], report["steps"], ours["batch"]) == ("cpu", "float32", 2, 3)
    assert ours["ratio_to_plain"] == pytest.approx(plain["s_per_frame"] / ours["s_per_frame"], rel=0.05)
    assert ours["unet_tflop_per_frame"] == plain["unet_tflop_per_frame"] > 0
    assert ours["achieved_tflops"] > 0
    assert ours["image_diff"]["passed"]
    assert ours["image_diff"]["frames"] == 3
    assert plain["fraction_of_floor"] is None  # no known peak for a CPU
    table = (tmp_path / "bench.md").read_text()
    assert "| 64x64 | reelforge (batched) | 3 |" in table
    assert "pass" in table
    assert report["command"] == "reelforge bench --sizes 64x64 --steps 2 --frames 3 --model reelforge/tiny-sd"


def test_image_check_fails_beyond_its_tolerance() -> None:
    frames = [np.full((8, 8, 3), 100, dtype=np.uint8)] * 2
    shifted = [f + 2 for f in frames]  # 2 levels everywhere: within fp32's 99th percentile (2), above its mean (0.5)
    assert _compare(frames, frames, [0, 1], torch.float32)["passed"]
    assert not _compare(frames, shifted, [0, 1], torch.float32)["passed"]
    assert _compare(frames, shifted, [0, 1], torch.float16)["passed"]
