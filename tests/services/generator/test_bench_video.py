"""The video benchmark: full-size architectures as published, its CPU path end to end, and the worker's levers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from reelforge_bench.video import VIDEO_LEVERS, best_combination, compare, settings_for
from reelforge_bench.video_arch import FAMILIES, HUNYUAN15, LTX2, WAN22, parameters_on_meta
from reelforge_generator.config import GeneratorSettings
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import RenderSpec
from support.paths import ROOT

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(
    ("family", "encoder_params"),
    [(WAN22, 5.68e9), (LTX2, 11.77e9), (HUNYUAN15, 7.07e9)],
    ids=[WAN22.name, LTX2.name, HUNYUAN15.name],
)
def test_full_size_architectures_have_the_published_parameter_counts(family: object, encoder_params: float) -> None:
    transformer = parameters_on_meta(family.transformer)
    assert abs(transformer - family.published_params) / family.published_params < 0.02, transformer
    text_encoder = parameters_on_meta(family.text_encoder)  # UMT5-XXL, Gemma 3 12B, Qwen2.5 7B
    assert abs(text_encoder - encoder_params) / encoder_params < 0.02, text_encoder


def test_native_clips_are_720p_at_the_models_own_frame_counts() -> None:
    wan = WAN22.clip
    assert (wan.width, wan.height, wan.frames, wan.fps, wan.steps) == (1280, 704, 121, 24, 50)
    assert WAN22.latent_shape(wan, 48) == (48, 31, 44, 80)  # VAE 4x16x16
    assert HUNYUAN15.latent_shape(HUNYUAN15.clip, 32) == (32, 31, 45, 80)


def _bench(out: Path, *args: str) -> dict:
    env = os.environ | {"PYTHON": sys.executable, "REELFORGE_DEVICE": "cpu"}
    command = [str(ROOT / "scripts" / "gpu-bench.sh"), str(out), "--suite", "video", "--video-scale", "tiny", "--device", "cpu"]
    result = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "bench.json").read_text())


@pytest.mark.slow
def test_the_one_command_runs_every_model_and_lever_on_the_cpu(tmp_path: Path) -> None:
    report = _bench(tmp_path / "bench", "--budget-s", "600")
    video = report["video"]
    models = {row["model"]: row for row in video["models"]}
    assert set(models) == {f.title for f in FAMILIES.values()}
    for row in models.values():
        assert row["s_per_step"] > 0, row
        assert row["vae_decode_s"] > 0, row
        assert row["text_encode_s"] > 0, row
        assert row["tflop_per_step"] > 0, row
        expected = row["text_encode_s"] + row["steps"] * row["s_per_step"] + row["vae_decode_s"] + (row["mp4_encode_s"] or 0)
        assert row["s_per_clip"] == pytest.approx(expected, rel=0.02)
    levers = {row["lever"]: row for row in video["levers"]}
    assert levers["attention: FlashAttention 3 (_flash_3)"]["skipped"] == "CUDA only"
    assert levers["regional compile (compile_repeated_blocks)"]["skipped"] == "CUDA only"
    plain = video["levers"][0]
    assert plain["drift"]["psnr_db"] is None  # the plain run against itself: identical
    fp8 = levers["FP8 storage (enable_layerwise_casting)"]
    assert fp8["drift"]["max"] > 0, fp8  # FP8 weights change the numbers: the comparison sees it
    assert "MagCache" in levers["step cache: MagCache (uncalibrated ratios)"].get("skipped", "")  # needs model ratios
    for name in ("step cache: FirstBlockCache 0.05", "step cache: TaylorSeer (interval 3)", "VAE tiling"):
        assert "s_per_step" in levers[name], levers[name]
    assert [g["verdict"] for g in video["goals"]] == ["unmeasured (no H100 run)"] * 4
    render = video["worker_render"]  # the generator's own code renders one segment with the levers that won
    assert render["frames"] == 5, render
    assert render["seconds"] > 0, render
    markdown = (tmp_path / "bench" / "bench.md").read_text()
    assert "Video models at their published architectures" in markdown
    assert "Each lever on its own, then the best combination" in markdown
    assert (tmp_path / "bench" / "generator.env").exists()


@pytest.mark.slow  # renders the first video model of the benchmark
def test_a_short_budget_keeps_the_first_model_and_records_what_it_dropped(tmp_path: Path) -> None:
    report = _bench(tmp_path / "bench", "--budget-s", "0", "--video-models", f"{WAN22.name},{LTX2.name}")
    first, second = report["video"]["models"]
    assert first["s_per_step"] > 0
    assert second["skipped"].startswith("time budget")
    skipped = [row for row in report["video"]["levers"][1:] if row.get("skipped", "").startswith("time budget")]
    assert skipped, report["video"]["levers"]


def test_best_combination_takes_only_levers_faster_than_plain_and_within_the_drift_bound() -> None:
    same = compare(*(2 * [__import__("numpy").zeros((1, 2, 2, 3), dtype="uint8")]))
    far = {"mean": 90.0, "max": 255, "psnr_db": 8.0, "within_bound": False}
    rows = [
        {"lever": "plain", "s_per_step": 1.0, "drift": same},
        {"lever": "attention: cuDNN (_native_cudnn)", "s_per_step": 0.8, "x_plain": 1.25, "drift": same},
        {"lever": "attention: FlashAttention 3 (_flash_3)", "s_per_step": 0.7, "x_plain": 1.43, "drift": same},
        {"lever": "step cache: FirstBlockCache 0.1", "s_per_step": 0.4, "x_plain": 2.5, "drift": far},
        {"lever": "step cache: FirstBlockCache 0.05", "s_per_step": 0.6, "x_plain": 1.6, "drift": same},
        {"lever": "FP8 storage (enable_layerwise_casting)", "s_per_step": 1.1, "x_plain": 0.9, "drift": same},
    ]
    picked = best_combination(rows)
    assert [lever.name for lever in picked] == ["attention: FlashAttention 3 (_flash_3)", "step cache: FirstBlockCache 0.05"]
    assert settings_for(picked) == {
        "REELFORGE_ATTENTION_BACKEND": "_flash_3",
        "REELFORGE_STEP_CACHE": "first-block",
        "REELFORGE_STEP_CACHE_THRESHOLD": "0.05",
    }
    assert {lever.name for lever in VIDEO_LEVERS} >= {row["lever"] for row in rows[1:]}


def test_the_worker_renders_with_the_levers_the_benchmark_picks_and_logs_them_at_start(model_cache: Path) -> None:
    settings = GeneratorSettings(
        model_cache_dir=str(model_cache),
        model="reelforge/tiny-wan",
        steps=3,
        clip_frames=2,
        step_cache="first-block",
        step_cache_threshold=0.5,
        fp8_storage="on",
        device="cpu",
    )
    renderer = FrameRenderer(settings)
    with structlog.testing.capture_logs() as logs:
        renderer.setup()
    assert renderer.levers[-2:] == ["step-cache-first-block", "fp8-storage"]
    started = [entry for entry in logs if entry["event"] == "speed.levers"]
    assert started, logs
    assert started[0]["levers"] == renderer.levers
    spec = RenderSpec(prompt="a man plants a sapling", seed=7, frames=2, fps=2, width=64, height=64)
    frames = dict(renderer.render(spec, [0, 1]))
    assert sorted(frames) == [0, 1]


def test_a_lever_the_model_cannot_take_is_refused_at_start_naming_the_setting(model_cache: Path) -> None:
    settings = GeneratorSettings(model_cache_dir=str(model_cache), model="reelforge/tiny-sd", step_cache="first-block")
    with pytest.raises(PermanentError, match="REELFORGE_STEP_CACHE=first-block: UNet2DConditionModel takes only 'pyramid'"):
        FrameRenderer(settings).setup()
