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
from reelforge_shared.errors import PermanentError


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
    applied += apply_step_levers(unet, settings, device)
    if is_on(settings.compile, device) and not is_on(settings.regional_compile, device):
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


class _CurrentTimestep:
    """The timestep of the denoiser's latest call, read by caches that skip work by timestep (PyramidAttentionBroadcast)."""

    def __init__(self, model: Any) -> None:
        self.value = 1000
        model.register_forward_pre_hook(self._seen, with_kwargs=True)

    def _seen(self, module: Any, args: tuple, kwargs: dict) -> None:
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        if isinstance(timestep, torch.Tensor) and timestep.numel():
            self.value = int(timestep.flatten()[0].item())
        elif isinstance(timestep, int | float):
            self.value = int(timestep)

    def __call__(self) -> int:
        return self.value


def step_cache_config(settings: GeneratorSettings, model: Any) -> Any:
    """diffusers' cache config for ``settings.step_cache`` (None when off)."""
    from diffusers import FirstBlockCacheConfig, PyramidAttentionBroadcastConfig, TaylorSeerCacheConfig

    if settings.step_cache == "first-block":
        return FirstBlockCacheConfig(threshold=settings.step_cache_threshold)
    if settings.step_cache == "taylorseer":
        return TaylorSeerCacheConfig(cache_interval=3, disable_cache_before_step=2)
    if settings.step_cache == "pyramid":
        return PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(100, 800),
            current_timestep_callback=_CurrentTimestep(model),
        )
    return None


def apply_step_levers(model: Any, settings: GeneratorSettings, device: str) -> list[str]:
    """The video transformer levers: attention backend, step cache, FP8 storage, regional compile (names applied).

    A lever the model cannot take (a UNet has no attention backends or first-block cache) is refused
    with the setting named, at start, not at the first segment.
    """
    applied: list[str] = []
    if settings.attention_backend != "native":
        if not hasattr(model, "set_attention_backend"):
            name = type(model).__name__
            raise PermanentError(f"REELFORGE_ATTENTION_BACKEND={settings.attention_backend}: {name} has no backends")
        model.set_attention_backend(settings.attention_backend)
        applied.append(f"attention-{settings.attention_backend}")
    if settings.step_cache != "off":
        config = step_cache_config(settings, model)
        if hasattr(model, "enable_cache") and settings.step_cache != "pyramid":
            model.enable_cache(config)
        else:
            from diffusers import apply_pyramid_attention_broadcast

            if settings.step_cache != "pyramid":
                raise PermanentError(f"REELFORGE_STEP_CACHE={settings.step_cache}: {type(model).__name__} takes only 'pyramid'")
            apply_pyramid_attention_broadcast(model, config)
        applied.append(f"step-cache-{settings.step_cache}")
    if is_on(settings.fp8_storage, device):
        model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=model.dtype)
        applied.append("fp8-storage")
    if is_on(settings.regional_compile, device):
        if not hasattr(model, "compile_repeated_blocks") or not getattr(model, "_repeated_blocks", None):
            raise PermanentError(f"REELFORGE_REGIONAL_COMPILE=on: {type(model).__name__} declares no repeated blocks")
        use_compile_cache(settings.compile_cache_dir)
        model.compile_repeated_blocks(fullgraph=True, dynamic=False)
        applied.append("regional-compile")
    return applied
