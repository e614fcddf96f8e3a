"""The GPU work, cog-style: ``setup()`` loads a model once, ``render()`` turns a spec into frames.

Model-agnostic: ``DiffusionPipeline.from_pretrained`` reads the pipeline class from the model and
the class picks how frames are made: one image per frame (:mod:`~reelforge_generator.per_frame`)
or clips of a video model (:mod:`~reelforge_generator.clips`). Around every UNet batch the
renderer waits for the GPU to cool, keeps VRAM under the limit, times the batch, and hands the
previous batch's frames to PNG encoding threads so that encoding (and the handler's uploads)
overlap the next batch's GPU work.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers.utils.logging
import numpy as np
import structlog
import torch
import transformers.utils.logging
from diffusers import DiffusionPipeline
from PIL import Image

from reelforge_generator import metrics
from reelforge_generator.clips import ImageToVideo, StartImage, TextToVideo
from reelforge_generator.config import GeneratorSettings
from reelforge_generator.fallback import RenderPlan
from reelforge_generator.frame_rule import fit_handles
from reelforge_generator.gpu import GpuSource, source_for
from reelforge_generator.guards import ThermalGuard, VramGuard
from reelforge_generator.hunyuan_video import HunyuanImageToVideo, HunyuanTextToVideo
from reelforge_generator.model_files import model_not_found
from reelforge_generator.per_frame import PerFrame
from reelforge_generator.prompts import PROMPT_REPORT, PromptReport
from reelforge_generator.sound_video import SoundImageToVideo, SoundTextToVideo
from reelforge_generator.speed import apply_levers, attention_kernels
from reelforge_generator.strategy import ModelContext, Strategy
from reelforge_generator.transformer_video import TransformerImageToVideo, TransformerTextToVideo
from reelforge_shared.errors import InvalidInput, PermanentError
from reelforge_shared.events import ModelInfo, RenderSpec
from reelforge_shared.shots import RenderProfile, json_digest, model_revision
from reelforge_tiny import TINY_MODELS, model_marker, resolve_model

log = structlog.get_logger("reelforge.generator")

STRATEGIES: dict[str, Callable[[ModelContext], Strategy]] = {  # pipeline class -> how it makes frames
    "StableDiffusionPipeline": PerFrame,
    "StableDiffusionXLPipeline": PerFrame,
    "TextToVideoSDPipeline": TextToVideo,
    "AnimateDiffPipeline": TextToVideo,
    "StableVideoDiffusionPipeline": ImageToVideo,
    "WanPipeline": TransformerTextToVideo,
    "LTX2Pipeline": SoundTextToVideo,
    "LTX2ImageToVideoPipeline": SoundImageToVideo,
    "WanImageToVideoPipeline": TransformerImageToVideo,
    "HunyuanVideo15Pipeline": HunyuanTextToVideo,
    "HunyuanVideo15ImageToVideoPipeline": HunyuanImageToVideo,
}


def quiet_libraries() -> None:
    """Loading bars belong to notebooks; the libraries' warnings (a truncated prompt, a deprecation) belong in the log.

    diffusers and transformers write to stderr through their own handler and stop there; here their
    records go to the root logger, which the service's logging setup formats, and Python warnings with them.
    """
    for library in (diffusers.utils.logging, transformers.utils.logging):
        library.disable_progress_bar()
        library.set_verbosity_warning()
        library.disable_default_handler()
        library.enable_propagation()
    logging.captureWarnings(True)


def refuse_test_model(name: str, settings: GeneratorSettings) -> None:
    if not settings.allow_test_model:
        raise PermanentError(
            f"model {name!r} is a random-weight test model and renders noise; set REELFORGE_MODEL to a real model "
            "(a Hugging Face id in the local cache or a path), or REELFORGE_ALLOW_TEST_MODEL=1 to use it on purpose"
        )


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # Level 1: frames are intermediates the encoder reads once; level 6 (PIL's default) costs ~4x the time for ~10 % less.
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) floats in 0..1 -> (n, H, W, 3) uint8 on the host, rounded as diffusers' PIL output is."""
    return (images.float() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@dataclass(slots=True)
class RunReport:
    """What the last ``render`` did, for the handler's event and the benchmark."""

    plan: RenderPlan
    batches: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    peak_vram_bytes: int | None = None
    frames: int = 0  # frames rendered and kept
    prompt: PromptReport | None = None
    sound: dict[int, torch.Tensor] = field(default_factory=dict)  # a clip's first frame -> its (channels, samples)
    sample_rate: int | None = None

    def figures(self) -> dict[str, object]:
        """The segment's figures for its events and the report: render s, s/frame, peak VRAM, degradation."""
        return {
            "render_s": round(self.seconds, 3),
            "s_per_frame": round(self.seconds / self.frames, 4) if self.frames else None,
            "peak_vram_bytes": self.peak_vram_bytes,
            "degraded": "; ".join(self.notes) or None,
        }


def load_pipeline(
    name: str, cache_dir: str, dtype: torch.dtype, settings: GeneratorSettings | None = None
) -> tuple[Any, dict, str]:
    """The pipeline (its class read from the model), its Reelforge marker and its local path.

    With ``settings``, a random-weight test model is refused unless they allow it (local mode does).
    """
    if settings is not None and name in TINY_MODELS:
        refuse_test_model(name, settings)
    path = resolve_model(name, Path(cache_dir))
    marker = model_marker(path)
    if settings is not None and marker.get("random_weights"):
        refuse_test_model(name, settings)
    quiet_libraries()
    try:
        pipe = DiffusionPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise model_not_found(name, path, exc) from exc
    return pipe, marker, path


class FrameRenderer:
    """One loaded pipeline; a worker keeps it between jobs."""

    def __init__(
        self,
        settings: GeneratorSettings,
        gpu: GpuSource | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.device = settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.gpu = gpu if gpu is not None else source_for(self.device)
        self.thermal = ThermalGuard(
            self.gpu, settings.thermal_pause_c, settings.thermal_resume_c, settings.thermal_poll_s, sleep=sleep, clock=clock
        )
        self.pipe: Any = None  # a diffusers pipeline (untyped)
        self.strategy: Strategy | None = None
        self.model: ModelInfo | None = None
        self.levers: list[str] = []
        self.defaults: dict = {}
        self.profile: RenderProfile | None = None  # the loaded model's, for shot keys (reelforge_shared.shots)
        self.last_run: RunReport | None = None
        self._offloaded = False
        self._keyframers: dict[str, FrameRenderer] = {}
        self.pipe_lock = threading.Lock()  # strategies set a pipeline setting and call the pipeline under it (strategy.py)
        self._encoder = ThreadPoolExecutor(2, thread_name_prefix="png")  # two: one frame per core on the smallest machines
        metrics.watch(self.gpu)

    # 1. Setup: load once.
    def setup(self, model: str | None = None) -> ModelInfo:
        name = model or self.settings.model
        pipe, marker, path = load_pipeline(name, self.settings.model_cache_dir, self.dtype, self.settings)
        return self.adopt(pipe, name, marker, path)

    @property
    def dtype(self) -> torch.dtype:
        if self.settings.dtype == "auto":
            return torch.float16 if self.device.startswith("cuda") else torch.float32
        return getattr(torch, self.settings.dtype)

    def adopt(self, pipe: Any, name: str, marker: dict, path: str = "") -> ModelInfo:
        """Use an already built pipeline (the benchmark builds the real architecture in memory)."""
        strategy = STRATEGIES.get(type(pipe).__name__)
        if strategy is None:
            raise PermanentError(f"model {name!r} is a {type(pipe).__name__}; supported pipelines: {', '.join(STRATEGIES)}")
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.levers = apply_levers(pipe, self.settings, self.device)
        log.info("speed.levers", model=name, pipeline=type(pipe).__name__, device=self.device, levers=self.levers)
        self.pipe, self._offloaded = pipe, False
        context = ModelContext(pipe, self.settings, marker, path, keyframer=self._keyframe, pipe_lock=self.pipe_lock)
        self.strategy = strategy(context)
        self.defaults = marker
        self.model = ModelInfo(name=name, pipeline=type(pipe).__name__, random_weights=bool(marker.get("random_weights")))
        self.profile = self._profile(name, path)
        return self.model

    def _profile(self, name: str, path: str) -> RenderProfile:
        """What this worker adds to a spec to render it: the model's revision and the settings that change pixels."""
        strategy, pipe, settings = self._loaded()[0], self.pipe, self.settings
        scheduler = getattr(pipe, "scheduler", None)
        scheduler_config = dict(getattr(scheduler, "config", {}) or {})
        picture = (
            "motion",
            "video_motion",
            "clip_frames",
            "img2img_strength",
            "ip_adapter",
            "ip_adapter_weight",
            "ip_adapter_scale",
            "keyframe_model",
            "quality_mode",
        )
        return RenderProfile(
            model=name,
            revision=model_revision(path) if path else f"name:{name}",
            pipeline=type(pipe).__name__,
            scheduler=f"{type(scheduler).__name__}:{json_digest(scheduler_config)}" if scheduler is not None else "",
            steps=strategy.steps,
            guidance=strategy.guidance,
            generation_width=settings.generation_width or self.defaults.get("default_width", 1024),
            size_multiple=self.size_multiple,
            dtype=str(self.dtype).removeprefix("torch."),
            device=self.device.split(":")[0],
            options={name: getattr(settings, name) for name in picture},
        )

    def _loaded(self) -> tuple[Strategy, ModelInfo]:
        """The model's strategy and identity; setup() or adopt() must have run."""
        if self.strategy is None or self.model is None:
            raise RuntimeError("no model loaded: call setup() first")
        return self.strategy, self.model

    @property
    def size_multiple(self) -> int:
        """Generation sizes are multiples of this.

        The image UNet upsamples to its skip connections' sizes, so any multiple of the VAE's
        downscale works (1080 lines stay 1080) that the SD pipelines accept (they ask for multiples
        of 8); the video UNets need every halving to be exact.
        """
        strategy = self._loaded()[0]
        if strategy.size_multiple:  # the strategy knows its model's
            return strategy.size_multiple
        if not strategy.clip_based:
            return math.lcm(self.pipe.vae_scale_factor, 8)
        if getattr(self.pipe, "transformer", None) is not None:  # video transformers: the VAE's downscale times the patch
            return int(self.pipe.vae_scale_factor_spatial * self.pipe.transformer.config.patch_size[1])
        return self.pipe.vae_scale_factor * 2 ** (len(self.pipe.unet.config.block_out_channels) - 1)

    @property
    def frame_step(self) -> int | None:
        """Clips are ``frame_step * k + 1`` frames: the VAE compresses time after frame 0 by this (Wan 2.x and
        HunyuanVideo 1.5: 4, LTX-2: 8); None for models without such a rule (per-frame models, UNet video models)."""
        strategy = self._loaded()[0]
        if not strategy.clip_based:
            return None
        for name in ("vae_scale_factor_temporal", "vae_temporal_compression_ratio"):  # Wan/HunyuanVideo, LTX-2
            if isinstance(step := getattr(self.pipe, name, None), int) and step > 1:
                return step
        return None

    def fit_handles(self, spec: RenderSpec) -> RenderSpec:
        """``spec`` with handles fitted to the loaded model's frame-count rule (:mod:`reelforge_generator.frame_rule`)."""
        return fit_handles(spec, self._loaded()[0], self.frame_step)

    def generation_size(self, spec: RenderSpec) -> tuple[int, int]:
        """Render size: the configured width, the output's aspect, rounded to what the UNet can halve.

        A model that renders at sizes of its own (HunyuanVideo 1.5 image-to-video) says which, by the output's aspect.
        """
        if own_size := self._loaded()[0].own_size(spec):
            return own_size
        width = self.settings.generation_width or self.defaults.get("default_width", 1024)
        multiple = self.size_multiple
        height = width * spec.height / spec.width
        return (max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple))

    @property
    def makes_sound(self) -> bool:
        """The loaded model makes each segment's sound with its frames (LTX-2)."""
        return self._loaded()[0].makes_sound

    def plan(self, spec: RenderSpec) -> RenderPlan:
        batch = 1 if self._loaded()[0].clip_based else self.settings.batch_size
        return RenderPlan(*self.generation_size(spec), batch=batch)

    # 2. Run: frames of one segment, yielded as PNG bytes in frame order.
    @torch.inference_mode()
    def render(
        self, spec: RenderSpec, frames: list[int], plan: RenderPlan | None = None, report: RunReport | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """``report`` receives what this render did (also kept as ``last_run`` for the CLI and the benchmark)."""
        plan = plan or self.plan(spec)
        strategy, model = self._loaded()
        report = self.last_run = report if report is not None else RunReport(plan)
        if not frames:
            return
        # 2.1 Check inputs.
        bad = [i for i in frames if not 0 <= i < spec.frames]
        if bad:
            raise InvalidInput(f"frames {bad} outside 0..{spec.frames - 1}")
        began = time.perf_counter()
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(self.device)
        vram = VramGuard(
            self.gpu, self.settings.vram_limit_gb, release=self._release, offload=self._offload, offloaded=self._offloaded
        )
        # 2.2 What every call of the segment shares, computed once (prompt and reference embeddings).
        with attention_kernels(self.settings.sdpa_backend):
            conditioning = strategy.prepare(spec, plan)
        prompt = conditioning.pop(PROMPT_REPORT, None)
        report.prompt = prompt if isinstance(prompt, PromptReport) else None
        # 2.3 Denoise batch by batch; encode the previous batch's PNGs while the next one runs.
        remaining, batch = sorted(set(frames)), plan.batch
        pending: list[tuple[int, Future]] = []
        while remaining:
            self.thermal.wait_until_cool()
            batch = vram.batch_for(batch)
            rendered, kept = strategy.next_unit(spec, remaining, batch)
            started = time.perf_counter()
            with attention_kernels(self.settings.sdpa_backend):
                clip = strategy.run(spec, conditioning, rendered, plan)
            pixels = to_pixels(clip.frames)
            if clip.audio is not None:
                report.sound[rendered[0]], report.sample_rate = clip.audio, clip.sample_rate
            self._count(len(kept), len(rendered), time.perf_counter() - started)
            report.frames += len(kept)
            report.batches.append(len(rendered))
            ready = [(i, self._encoder.submit(encode_png, pixels[rendered.index(i)])) for i in kept]
            yield from self._collect(pending)
            pending, remaining = ready, [i for i in remaining if i not in kept]
        yield from self._collect(pending)
        self._offloaded = vram.offloaded
        report.notes, report.seconds = vram.notes, time.perf_counter() - began
        metrics.SEGMENT_SECONDS.labels(model.name).observe(report.seconds)
        if self.device.startswith("cuda"):
            report.peak_vram_bytes = torch.cuda.max_memory_allocated(self.device)
            metrics.VRAM_PEAK.set(report.peak_vram_bytes)

    @staticmethod
    def _collect(pending: list[tuple[int, Future]]) -> Iterator[tuple[int, bytes]]:
        for index, future in pending:
            yield index, future.result()

    def _count(self, kept: int, rendered: int, seconds: float) -> None:
        name = self._loaded()[1].name
        for _ in range(kept):
            metrics.FRAME_SECONDS.labels(name).observe(seconds / rendered)
        metrics.FRAMES_RENDERED.labels(name).inc(kept)

    # 3. Cast sheets: the reference images a segment is conditioned on when its cast has none (issue 18 point 6).
    def _sheet_source(self) -> str | None:
        """Who renders a cast sheet image for the loaded model: ``keyframe`` (image-to-video starts from it, the
        text-to-image keyframe model draws it), ``self`` (a per-frame model with a configured IP-Adapter draws its own), else
        None: the model takes no reference, so a sheet would change nothing."""
        strategy = self._loaded()[0]
        start = getattr(strategy, "start", None)
        if isinstance(start, StartImage):
            return "keyframe" if start.keyframe_model is not None else None
        # A per-frame model weighs references through an IP-Adapter: one configured (REELFORGE_IP_ADAPTER), not the one a
        # model folder may bring on its own (the tiny test model's), which would condition every film on a sheet unasked.
        return "self" if not strategy.clip_based and self.settings.ip_adapter else None

    @property
    def takes_reference(self) -> bool:
        """The loaded model is conditioned on reference images (image-to-video, or an IP-Adapter)."""
        return self._sheet_source() is not None

    @property
    def references_used(self) -> int | None:
        """How many reference images the loaded model weighs: image-to-video starts from the first one only (None: all)."""
        return 1 if self._sheet_source() == "keyframe" else None

    def render_sheet(self, spec: RenderSpec, plan: RenderPlan) -> bytes:
        """A cast sheet image (PNG) of ``spec`` (:func:`reelforge_shared.shots.sheet_spec`) at ``plan``'s size."""
        if self._sheet_source() == "keyframe":
            start = getattr(self._loaded()[0], "start")  # noqa: B009 - a StartImage, checked by _sheet_source
            out = io.BytesIO()
            self._keyframe(start.keyframe_model, spec, plan).save(out, format="PNG")
            return out.getvalue()
        return dict(self.render(spec, [0], RenderPlan(plan.width, plan.height, 1)))[0]

    def _keyframe(self, model: str, spec: RenderSpec, plan: RenderPlan) -> Image.Image:
        """Frame 0 of ``spec`` by the text-to-image ``model`` (loaded once, beside this renderer's own model)."""
        if model not in self._keyframers:
            keyframer = FrameRenderer(
                self.settings.model_copy(update={"model": model, "steps": None, "guidance_scale": None}), gpu=self.gpu
            )
            keyframer.setup()
            self._keyframers[model] = keyframer
        png = dict(self._keyframers[model].render(spec, [0], RenderPlan(plan.width, plan.height, 1)))[0]
        return Image.open(io.BytesIO(png)).convert("RGB")

    def _release(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _offload(self) -> None:
        """Idle parts of the model to host memory (diffusers' model offload): the same images, slower."""
        if self.device.startswith("cuda"):
            self.pipe.enable_model_cpu_offload(device=self.device)
