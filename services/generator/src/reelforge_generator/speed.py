"""Speed levers that keep the images: attention kernel, memory format, fused QKV, torch.compile, VAE decode.

Each is a setting (``auto`` means on for CUDA, off on the CPU); :func:`apply_levers` turns them on
for a loaded pipeline and returns their names, which the benchmark reports beside its figures.
On the H100 anchor (``docs/benchmarks.md``) batching + channels_last gave 1.8x at 1024x576 and
torch.compile another 1.4x, so both are on for CUDA; cuDNN attention first gave nothing
measurable over PyTorch's order, and fused QKV is unmeasured on a GPU, so both stay off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from reelforge_generator.config import GeneratorSettings, Switch


def is_on(switch: Switch, device: str) -> bool:
    return switch == "on" or (switch == "auto" and device.startswith("cuda"))


def use_compile_cache(directory: str) -> Path:
    """Inductor's on-disk FX graph cache in ``directory``: a second worker (or a restart) loads compiled kernels."""
    path = Path(directory).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)  # read when Inductor first compiles, so set before
    import torch._inductor.config as inductor

    inductor.fx_graph_cache = True
    return path


def apply_levers(pipe: Any, settings: GeneratorSettings, device: str) -> list[str]:
    """Turn on what the settings ask for; the names of what is on, in the order applied."""
    applied: list[str] = []
    name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"  # video transformers (Wan) denoise too
    unet = getattr(pipe, name)
    vae: Any = getattr(pipe, "vae", None)
    if is_on(settings.fuse_qkv, device) and hasattr(pipe, "fuse_qkv_projections") and hasattr(unet, "fuse_qkv_projections"):
        pipe.fuse_qkv_projections(unet=True, vae=type(vae).__name__ == "AutoencoderKL")
        applied.append("fused-qkv")
    if is_on(settings.channels_last, device) and name == "unet":  # 4-D convolutions only
        unet.to(memory_format=torch.channels_last)
        if vae is not None:
            vae.to(memory_format=torch.channels_last)
        applied.append("channels-last")
    if settings.quality_mode == "tiled-vae":
        vae.enable_tiling()
        applied.append("tiled-vae")
    elif settings.vae_decode == "sliced":
        vae.enable_slicing()
        applied.append("sliced-vae")
    if settings.sdpa_backend != "auto":
        applied.append(f"sdpa-{settings.sdpa_backend}")
    if is_on(settings.compile, device):
        use_compile_cache(settings.compile_cache_dir)
        # Static shapes: a worker renders a few sizes, each compiled for itself (a dynamic graph is slower).
        setattr(pipe, name, torch.compile(unet, mode=settings.compile_mode, dynamic=False))
        applied.append(f"compile-{settings.compile_mode}")
    return applied


@contextlib.contextmanager
def attention_kernels(backend: str) -> Iterator[None]:
    """SDPA with ``backend`` tried first and the others after it (the VAE's 512-wide single head needs a fallback)."""
    if backend == "auto":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kinds = {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }
    order = [kinds[backend]] + [kind for name, kind in kinds.items() if name != backend]
    with sdpa_kernel(order, set_priority=True):
        yield
