"""Generator settings (``REELFORGE_`` environment variables), read once in ``main()`` and passed in."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reelforge_shared.settings import CommonSettings

TINY_SD = "reelforge/tiny-sd"
Switch = Literal["auto", "on", "off"]  # auto: on for CUDA devices, off on the CPU (where these levers do not pay)


class GeneratorSettings(CommonSettings):
    model: str = Field(
        TINY_SD,
        description=f"model of segments that name none: Hugging Face id (warm cache) or local path; {TINY_SD} is the built-in "
        "tiny random-weight test model (the gateway checks prompts against its text encoder's limit)",
    )
    allow_test_model: bool = Field(
        False,
        description="allow the built-in random-weight test models outside local mode (they render noise; `run`/`up` allow them)",
    )
    model_cache_dir: str = Field("~/.cache/reelforge/models", description="where built-in test models are written")
    steps: int | None = Field(
        None,
        ge=1,
        le=200,
        validation_alias="REELFORGE_GENERATOR_STEPS",
        description="denoising steps (default 30; the tiny test models set their own)",
    )
    guidance_scale: float | None = Field(
        None, ge=0, description="classifier-free guidance scale (default 7.5; SVD: its max guidance, default 3; turbo models 0)"
    )
    generation_width: int | None = Field(
        None,
        ge=64,
        le=4096,
        description="render width; height follows the output's aspect (default 1024; 128 for the tiny models)",
    )
    batch_size: int = Field(
        8, ge=1, le=256, description="frames per UNet call (per-frame models); both CFG branches go in the same call"
    )
    queue_window: int = Field(
        4,
        ge=1,
        le=64,
        description="segments taken from the queue together and rendered grouped by model (one model stays loaded)",
    )
    motion: float = Field(
        0.35, ge=0, le=1.5708, description="radians of per-frame latent variation around the segment's shared latent"
    )
    video_motion: float = Field(
        1.2,
        ge=0,
        le=1.5708,
        description="the same for video models, whose temporal layers expect nearly independent noise per frame",
    )
    clip_frames: int | None = Field(
        None, ge=1, le=256, description="frames per denoising of a video model (default: the model's, else 16; SVD 14)"
    )
    device: str = Field("auto", description="torch device: auto, cpu, cuda, cuda:1 ...")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weights dtype (auto: fp16 on CUDA, fp32 on CPU); bfloat16 changes the images beyond fp16 noise"
    )
    quality_mode: Literal["exact", "tiled-vae"] = Field(
        "exact",
        description="exact: the plain diffusers pipeline's images up to fp16 noise; "
        "tiled-vae: decode in tiles (less memory, seams differ)",
    )
    img2img_strength: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="> 0: frames after the first are img2img from the segment's keyframe (frame 0) at this strength",
    )
    ip_adapter: str | None = Field(
        None, description="IP-Adapter repo id or path for reference images (tiny models bring their own)"
    )
    ip_adapter_weight: str = Field(
        "models/ip-adapter_sd15.safetensors", description="file of the IP-Adapter inside `ip_adapter` (subfolder/name)"
    )
    ip_adapter_scale: float = Field(0.6, ge=0, le=2, description="weight of the characters' reference images")
    keyframe_model: str | None = Field(
        None,
        description="text-to-image model that renders the conditioning image of image-to-video models "
        "when no reference image is given",
    )
    # Speed levers (docs/benchmarks.md says which were measured where).
    sdpa_backend: Literal["auto", "flash", "cudnn", "efficient", "math"] = Field(
        "auto", description="scaled-dot-product attention kernel tried first (auto: PyTorch's order)"
    )
    channels_last: Switch = Field("auto", description="UNet and VAE in channels_last memory format")
    fuse_qkv: Switch = Field(
        "off", description="fused query/key/value projections in the UNet and VAE attention (off until measured on a GPU)"
    )
    compile: Switch = Field("auto", description="torch.compile the UNet (the compile cache makes later workers skip compilation)")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode; reduce-overhead adds CUDA graphs"
    )
    compile_cache_dir: str = Field(
        "~/.cache/reelforge/torch-compile",
        description="persistent Inductor cache (mount a volume here so restarts skip compilation)",
    )
    # Video transformers (Wan, LTX-2, HunyuanVideo): the levers diffusers offers, each measured by `scripts/gpu-bench.sh`,
    # whose report ends with the values that won (docs/benchmarks.md). Off until an H100 run says otherwise.
    attention_backend: str = Field(
        "native",
        pattern=r"^[a-z0-9_]+$",
        description="diffusers attention backend of the video transformer (native, _native_cudnn, flash, _flash_3, sage)",
    )
    step_cache: Literal["off", "first-block", "taylorseer", "pyramid"] = Field(
        "off", description="reuse of denoiser work between steps (FirstBlockCache, TaylorSeer, PyramidAttentionBroadcast)"
    )
    step_cache_threshold: float = Field(
        0.05, gt=0, le=1, description="FirstBlockCache: relative change of the first block's output below which a step is reused"
    )
    fp8_storage: Switch = Field(
        "off", description="denoiser weights stored in FP8 (e4m3) and computed in the working precision (layerwise casting)"
    )
    regional_compile: Switch = Field(
        "off",
        description="torch.compile each repeated transformer block once (compile_repeated_blocks) instead of the whole model",
    )
    vae_decode: Literal["batched", "sliced"] = Field(
        "batched", description="decode a batch's frames in one VAE call or one by one (less memory, same images)"
    )
    # GPU safety (the GPU brief: offload above 40 GB, pause above 85 °C, resume at 80 °C, poll every 10 s).
    vram_limit_gb: float = Field(
        40.0, gt=0, description="above this (NVML, all processes) batches shrink, then the model is offloaded"
    )
    generator_timeout_per_frame_s: float = Field(
        60.0, gt=0, description="the generator's time limit per segment: REELFORGE_WORK_TIMEOUT_S plus this per frame"
    )
    thermal_pause_c: float = Field(85.0, description="pause between batches above this GPU temperature")
    thermal_resume_c: float = Field(80.0, description="resume at or below this temperature")
    thermal_poll_s: float = Field(10.0, gt=0, description="temperature poll interval while paused")
