"""The GPU benchmark's one command, run here on the CPU path with the tiny model: every section is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import ROOT

pytestmark = [pytest.mark.gpu, pytest.mark.slow]  # the whole command on the tiny model: over a minute on two cores


def test_gpu_bench_command_writes_json_and_markdown_on_the_cpu(tmp_path: Path, model_cache: Path) -> None:
    out = tmp_path / "bench"
    env = os.environ | {"PYTHON": sys.executable, "REELFORGE_MODEL_CACHE_DIR": str(model_cache), "REELFORGE_DEVICE": "cpu"}
    args = [
        "--suite",
        "sd",
        "--model",
        "reelforge/tiny-sd",
        "--sizes",
        "64x64",
        "--steps",
        "1",
        "--frames",
        "2",
        "--lever-frames",
        "1",
    ]
    result = subprocess.run(
        [str(ROOT / "scripts" / "gpu-bench.sh"), str(out), *args, "--lever-sizes", "64x64"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "bench.json").read_text())
    assert report["passed"]
    assert report["device"] == "cpu"
    assert report["command"].startswith("python -m reelforge_bench")
    plain, ours = report["rows"]
    assert ours["image_diff"]["passed"]
    assert ours["s_per_frame"] > 0
    assert plain["settings"].startswith("plain pipeline")
    assert set(report["profile"]["unet_call_by_kind_s"]) >= {"attention", "convolution", "matmul"}
    levers = {row["lever"]: row for row in report["lever_rows"]}
    assert levers["CUDA graphs (torch.compile reduce-overhead)"]["skipped"] == "CUDA only"
    assert levers["SDPA flash first"]["image_diff_vs_base"]["max"] <= 2  # a kernel choice keeps the picture
    markdown = (out / "bench.md").read_text()
    assert "Each lever on its own" in markdown
    assert "Where the time goes" in markdown
