"""The GPU work, cog-style: ``setup()`` loads a model once, ``render()`` turns a spec into frames.

Model-agnostic: ``DiffusionPipeline.from_pretrained`` reads the pipeline class from the model.
Per segment the prompt is encoded once and shared by every frame; frames start from the
segment's shared latent (see :mod:`reelforge_generator.latents`) and are denoised in batches.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from prometheus_client import Counter, Histogram

from reelforge_generator.config import GeneratorSettings
from reelforge_generator.latents import frame_latents
from reelforge_generator.tiny_models import model_marker, resolve_model
from reelforge_shared.errors import InvalidInput, PermanentError
from reelforge_shared.events import ModelInfo, RenderSpec

FRAMES_RENDERED = Counter("reelforge_generator_frames_total", "Frames rendered", ["model"])
FRAME_SECONDS = Histogram(
    "reelforge_generator_frame_seconds", "Render time per frame (batch time / frames in it)", ["model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)


def _quiet_libraries() -> None:
    """Loading bars and deprecation chatter belong to notebooks, not to a worker's log."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"diffusers\..*")


class FrameRenderer:
    """One loaded pipeline; a worker keeps it between jobs."""

    def __init__(self, settings: GeneratorSettings) -> None:
        self.settings = settings
        self.pipe = None
        self.model: ModelInfo | None = None
        self.defaults: dict = {}

    # 1. Setup: load once.
    def setup(self, model: str | None = None) -> ModelInfo:
        name = model or self.settings.model
        path = resolve_model(name, Path(self.settings.model_cache_dir))
        _quiet_libraries()
        from diffusers import DiffusionPipeline

        device = self.settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = self.settings.dtype
        if dtype == "auto":
            dtype = "float16" if device.startswith("cuda") else "float32"
        try:
            pipe = DiffusionPipeline.from_pretrained(path, torch_dtype=getattr(torch, dtype))
        except (OSError, ValueError) as exc:
            raise PermanentError(f"cannot load model {name!r}: {exc}") from exc
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe, self.defaults = pipe, model_marker(path)
        self.model = ModelInfo(name=name, pipeline=type(pipe).__name__, random_weights=bool(self.defaults.get("random_weights")))
        return self.model

    def generation_size(self, spec: RenderSpec) -> tuple[int, int]:
        """Render size: the configured width, the output's aspect, rounded to what the UNet can halve."""
        width = self.settings.generation_width or self.defaults.get("default_width", 1024)
        unet = self.pipe.unet
        multiple = self.pipe.vae_scale_factor * 2 ** (len(unet.config.block_out_channels) - 1)
        height = width * spec.height / spec.width
        return (max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple))

    # 2. Run: frames of one segment, yielded as PNG bytes in frame order.
    @torch.inference_mode()
    def render(self, spec: RenderSpec, frames: list[int]) -> Iterator[tuple[int, bytes]]:
        pipe = self.pipe
        if not frames:
            return
        # 2.1 Check inputs.
        bad = [i for i in frames if not 0 <= i < spec.frames]
        if bad:
            raise InvalidInput(f"frames {bad} outside 0..{spec.frames - 1}")
        width, height = self.generation_size(spec)
        steps = self.settings.steps or self.defaults.get("default_steps", 30)
        guidance = self.settings.guidance_scale
        # 2.2 Encode the prompt once for the whole segment.
        positive, negative = pipe.encode_prompt(
            spec.prompt, pipe.device, 1, guidance > 1, negative_prompt=spec.negative_prompt or None
        )[:2]
        # 2.3 Shared latents with per-frame variation (deterministic per frame index).
        f = pipe.vae_scale_factor
        shape = (pipe.unet.config.in_channels, height // f, width // f)
        latents = frame_latents(spec.seed, spec.character_seeds, spec.location_seed, shape, frames, self.settings.motion)
        # 2.4 Denoise in batches; both CFG branches go in one UNet call (the pipeline concatenates them).
        batch = self.settings.batch_size
        for start in range(0, len(frames), batch):
            chunk = frames[start : start + batch]
            began = time.perf_counter()
            out = pipe(
                prompt_embeds=positive.repeat(len(chunk), 1, 1),
                negative_prompt_embeds=negative.repeat(len(chunk), 1, 1) if negative is not None else None,
                latents=latents[start : start + batch].to(pipe.device, pipe.unet.dtype),
                height=height, width=width, num_inference_steps=steps, guidance_scale=guidance, output_type="pil",
            )
            per_frame = (time.perf_counter() - began) / len(chunk)
            for index, image in zip(chunk, out.images, strict=True):
                FRAME_SECONDS.labels(self.model.name).observe(per_frame)
                FRAMES_RENDERED.labels(self.model.name).inc()
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                yield index, buffer.getvalue()
