"""Each speed lever measured on its own, against one base, on one batch of frames.

The base is the generator without torch.compile: PyTorch's SDPA in its own kernel order, a batch
of frames per UNet call, channels_last, fp16 on CUDA. Every variant changes one thing, renders
the same frames from the same latents, and is checked against the base's images, so a lever that
changes the picture shows it. Variants run in an order that keeps the model intact for the next:
fused QKV is undone after it, bf16 (which rounds the weights) comes last and is cast back. A variant that would not
finish inside the time budget is recorded as skipped, not run.
"""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from reelforge_generator.config import GeneratorSettings
from reelforge_generator.fallback import RenderPlan
from reelforge_generator.gpu import GpuSource
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.events import RenderSpec


@dataclass(frozen=True, slots=True)
class Lever:
    name: str
    settings: dict
    dtype: torch.dtype | None = None  # cast the model to this first (and keep it: bf16 comes last)
    cuda_only: bool = False
    compiles: bool = False


LEVERS = (
    Lever("base: eager, SDPA (PyTorch's order), batched, channels_last", {}),
    Lever("SDPA flash first", {"sdpa_backend": "flash"}),
    Lever("SDPA cuDNN first", {"sdpa_backend": "cudnn"}),
    Lever("SDPA memory-efficient first", {"sdpa_backend": "efficient"}),
    Lever("fused QKV", {"fuse_qkv": "on"}),
    Lever("torch.compile default (persistent cache warm)", {"compile": "on"}, cuda_only=True, compiles=True),
    Lever(
        "CUDA graphs (torch.compile reduce-overhead)",
        {"compile": "on", "compile_mode": "reduce-overhead"},
        cuda_only=True,
        compiles=True,
    ),
    # Step caching: diffusers' first-block and TaylorSeer caches hook transformer blocks, which a UNet has not; its
    # PyramidAttentionBroadcast finds the UNet's spatial self-attention (the transformer_blocks inside each level).
    Lever("step cache: PyramidAttentionBroadcast (spatial self-attention every 2nd step)", {"step_cache": "pyramid"}),
    Lever("FP8 storage (layerwise casting, e4m3)", {"fp8_storage": "on"}),
    Lever("bf16 weights and activations", {"dtype": "bfloat16"}, dtype=torch.bfloat16),
)
BASE = {"compile": "off", "fuse_qkv": "off", "sdpa_backend": "auto", "channels_last": "on"}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _eager_unet(pipe: object) -> object:
    return getattr(pipe.unet, "_orig_mod", pipe.unet)


def measure_levers(
    pipe: object,
    settings: GeneratorSettings,
    spec: RenderSpec,
    frames: int,
    flop_per_frame: float,
    peak_tflops: float | None,
    deadline: float,
    gpu: GpuSource | None = None,
    compile_estimate_s: float = 90.0,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """One row per lever at ``spec``'s size: s/frame, first call (compile) s, peak VRAM, TFLOP/s, x base, image diff."""
    rows: list[dict] = []
    base_pixels: np.ndarray | None = None
    base_seconds: float | None = None
    for lever in LEVERS:
        row = {"lever": lever.name, "width": spec.width, "height": spec.height, "frames": frames}
        device = settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if lever.cuda_only and not device.startswith("cuda"):
            rows.append(row | {"skipped": "CUDA only"})
            continue
        estimate = (base_seconds or 0.0) * 2.5 + (compile_estimate_s if lever.compiles else 5.0)
        if time.monotonic() + estimate > deadline:
            rows.append(row | {"skipped": f"time budget (needs about {estimate:.0f} s)"})
            continue
        dtype = _eager_unet(pipe).dtype
        pipe.unet = _eager_unet(pipe)  # the generator's own run may have left a compiled UNet: every variant starts eager
        kept = copy.deepcopy(pipe.unet) if _hooks_for_good(lever) else None
        try:
            pixels, measured = _run_variant(pipe, settings, lever, spec, frames, gpu)
        except Exception as exc:  # noqa: BLE001 - one failing lever (a kernel missing on this device) must not end the run
            rows.append(row | {"error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        finally:
            pipe.unet = kept if kept is not None else _eager_unet(pipe)  # hooks and FP8 weights stay with the copy run
            if lever.settings.get("fuse_qkv") == "on":
                pipe.unfuse_qkv_projections(unet=True, vae=type(pipe.vae).__name__ == "AutoencoderKL")
            if lever.compiles:
                torch._dynamo.reset()
            if lever.dtype is not None:
                pipe.to(dtype=dtype)  # rounded through bf16 now: later sizes compare against their own base
        row |= measured
        tflop = flop_per_frame / 1e12
        row["achieved_tflops"] = float(f"{tflop / row['s_per_frame']:.3g}")
        row["fraction_of_floor"] = None if peak_tflops is None else float(f"{tflop / row['s_per_frame'] / peak_tflops:.3g}")
        if base_pixels is None:
            base_pixels, base_seconds = pixels, row["s_per_frame"] * frames
        else:
            row["x_base"] = round(base_seconds / frames / row["s_per_frame"], 2)
            diff = np.abs(base_pixels.astype(np.int16) - pixels.astype(np.int16))
            row["image_diff_vs_base"] = {
                "mean": round(float(diff.mean()), 3),
                "p99": float(np.percentile(diff, 99)),
                "max": int(diff.max()),
            }
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _hooks_for_good(lever: Lever) -> bool:
    """Levers that hook or re-store the UNet for good: they run on a copy, the original goes back after."""
    return lever.settings.get("step_cache", "off") != "off" or lever.settings.get("fp8_storage") == "on"


def _run_variant(
    pipe: object, settings: GeneratorSettings, lever: Lever, spec: RenderSpec, frames: int, gpu: GpuSource | None
) -> tuple[np.ndarray, dict]:
    if lever.dtype is not None:
        pipe.to(dtype=lever.dtype)
    renderer = FrameRenderer(settings.model_copy(update=BASE | lever.settings | {"batch_size": frames}), gpu=gpu)
    renderer.adopt(pipe, "bench", {"random_weights": True})
    device = renderer.device
    plan = RenderPlan(spec.width, spec.height, frames)
    wanted = list(range(frames))
    warm = spec.model_copy(update={"steps": 2})  # the first call pays compilation and allocator growth, not the steps
    _sync(device)
    began = time.perf_counter()
    list(renderer.render(warm, wanted, plan))
    _sync(device)
    first = time.perf_counter() - began
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    began = time.perf_counter()
    pngs = dict(renderer.render(spec, wanted, plan))
    _sync(device)
    seconds = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else None
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(pngs[i]))) for i in wanted])
    return pixels, {
        "levers_on": renderer.levers,
        "s_per_frame": round(seconds / frames, 4),
        "first_call_s": round(first, 1),
        "peak_vram_gib": None if peak is None else round(peak, 1),
    }
