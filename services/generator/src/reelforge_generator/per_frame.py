"""Text-to-image models (SD 1.x/2.x, SDXL, SDXL-Turbo) rendering a segment one frame per image.

What keeps the frames one shot: the prompt (and, with an IP-Adapter, the characters' reference
images) is encoded once per segment and shared by every call; each frame starts from the
segment's shared latent plus a slow per-frame walk (:mod:`reelforge_generator.latents`); with
``img2img_strength`` > 0 frames after the first are img2img from frame 0, the keyframe. All of it
depends only on the spec and the frame index, so any subset of frames renders the same images.

The IP-Adapter scale is the segment's (the configured weight with reference images, 0 without) but
lives on the shared UNet, with no per-call argument in diffusers: it travels in the conditioning and
is set right before each pipeline call, both under the renderer's pipeline lock, so concurrent
segments each render with their own scale.
"""

from __future__ import annotations

from typing import Any

import structlog
import torch
from diffusers import AutoPipelineForImage2Image
from PIL import Image

from reelforge_generator.fallback import RenderPlan
from reelforge_generator.latents import frame_generators, frame_latents
from reelforge_generator.model_files import model_not_found
from reelforge_generator.prompts import PROMPT_REPORT, encode_prompt
from reelforge_generator.references import load_references
from reelforge_generator.strategy import Clip, Knobs, ModelContext
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import RenderSpec

log = structlog.get_logger("reelforge.generator")
IP_ADAPTER_SCALE = "ip_adapter_scale"  # the key of the segment's IP-Adapter scale in its conditioning (not a pipeline argument)


def batched(conditioning: dict[str, object], n: int) -> dict[str, object]:
    """Per-frame copies of the shared tensors (the pipeline repeats IP-Adapter embeddings itself)."""
    return {k: v.repeat(n, *[1] * (v.ndim - 1)) if isinstance(v, torch.Tensor) else v for k, v in conditioning.items()}


class PerFrame(Knobs):
    """One image per frame; ``batch`` frames (and both CFG branches) per UNet call."""

    kind = "text-to-image"
    clip_based = False

    def __init__(self, context: ModelContext) -> None:
        self.pipe, self.settings, self.defaults, self.model_path = (
            context.pipe,
            context.settings,
            context.defaults,
            context.model_path,
        )
        settings, defaults = self.settings, self.defaults
        self.steps = settings.steps or defaults.get("default_steps", 30)
        self.guidance = settings.guidance_scale if settings.guidance_scale is not None else defaults.get("default_guidance", 7.5)
        self.pipe_lock = context.pipe_lock
        self._img2img: Any = None  # a diffusers image-to-image pipeline, made on first use
        self._ip_adapter = False
        self._keyframes: dict[tuple, torch.Tensor] = {}

    def prepare(self, spec: RenderSpec, plan: RenderPlan) -> dict[str, object]:
        """Everything the segment's calls share: prompt embeddings, reference-image embeddings."""
        embeds, report = encode_prompt(self.pipe, spec, self.guidance_for(spec))
        conditioning: dict[str, object] = embeds | {PROMPT_REPORT: report}
        if spec.reference_images and not self._ip_adapter:
            if self.ip_adapter_source() is None:
                log.warning("generator.references_unused", reason="the model has no IP-Adapter; set REELFORGE_IP_ADAPTER")
            else:
                self._load_ip_adapter()
        if self._ip_adapter:
            conditioning |= self._reference_conditioning(spec.reference_images, plan, self.guidance_for(spec))
        return conditioning

    def next_unit(self, spec: RenderSpec, remaining: list[int], batch: int) -> tuple[list[int], list[int]]:
        """The next ``batch`` missing frames: rendered and kept alike."""
        return remaining[:batch], remaining[:batch]

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        """Images of ``frames`` as a float tensor (n, 3, H, W) in 0..1 on the device."""
        return Clip(self._images(spec, conditioning, frames, plan))

    def _images(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> torch.Tensor:
        latents = self.latents(spec, frames, plan)
        if self.settings.img2img_strength == 0:
            return self._call(
                self.pipe, spec, conditioning, latents=latents, generator=frame_generators(spec.seed, frames), plan=plan
            )
        images: list[Any] = [None] * len(frames)
        if 0 in frames:  # the keyframe itself renders as without chaining
            k = frames.index(0)
            images[k] = self._call(
                self.pipe, spec, conditioning, latents=latents[k : k + 1], generator=frame_generators(spec.seed, [0]), plan=plan
            )[0]
        chained = [i for i in frames if i != 0]
        if chained:
            out = self._call(
                self._image_to_image(),
                spec,
                conditioning,
                image=self._keyframe(spec, conditioning, plan).repeat(len(chained), 1, 1, 1),
                strength=self.settings.img2img_strength,
                generator=frame_generators(spec.seed, chained),
                plan=plan,
            )
            for image, i in zip(out, chained, strict=True):
                images[frames.index(i)] = image
        return torch.stack(images)

    def latents(self, spec: RenderSpec, frames: list[int], plan: RenderPlan) -> torch.Tensor:
        f = self.pipe.vae_scale_factor
        shape = (self.pipe.vae.config.latent_channels, plan.height // f, plan.width // f)
        latents = frame_latents(spec.seed, spec.character_seeds, spec.location_seed, shape, frames, self.settings.motion)
        return latents.to(self.pipe._execution_device, self.pipe.unet.dtype)

    def _call(
        self,
        pipe: Any,
        spec: RenderSpec,
        conditioning: dict[str, object],
        plan: RenderPlan,
        output_type: str = "pt",
        **kwargs: Any,
    ) -> torch.Tensor:
        n = len(kwargs["latents"]) if "latents" in kwargs else len(kwargs["image"])
        arguments = batched(conditioning, n)
        with self.pipe_lock:  # the scale set here is the one this call renders with
            if self._ip_adapter and IP_ADAPTER_SCALE not in arguments:  # prepared before another segment loaded it
                arguments |= self._reference_conditioning([], plan, self.guidance_for(spec))
            if IP_ADAPTER_SCALE in arguments:
                pipe.set_ip_adapter_scale(arguments.pop(IP_ADAPTER_SCALE))
            return pipe(
                **arguments,
                **kwargs,
                height=plan.height,
                width=plan.width,
                num_inference_steps=self.steps_for(spec),
                guidance_scale=self.guidance_for(spec),
                output_type=output_type,
            ).images

    def _keyframe(self, spec: RenderSpec, conditioning: dict[str, object], plan: RenderPlan) -> torch.Tensor:
        """Frame 0's denoised latents, the start of every chained frame; rendered again only for a new segment."""
        key = (spec.model_dump_json(), plan.size)
        if key not in self._keyframes:
            self._keyframes = {
                key: self._call(
                    self.pipe,
                    spec,
                    conditioning,
                    latents=self.latents(spec, [0], plan),
                    generator=frame_generators(spec.seed, [0]),
                    plan=plan,
                    output_type="latent",
                )
            }
        return self._keyframes[key]

    def _image_to_image(self) -> Any:
        if self._img2img is None:
            self._img2img = AutoPipelineForImage2Image.from_pipe(self.pipe)  # the same modules, no second copy
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def ip_adapter_source(self) -> tuple[str, str, str] | None:
        """(repo or path, subfolder, weight file) of the model's IP-Adapter, if it has one."""
        if self.settings.ip_adapter:
            subfolder, _, weight = self.settings.ip_adapter_weight.rpartition("/")
            return self.settings.ip_adapter, subfolder, weight
        if own := self.defaults.get("ip_adapter"):
            return self.model_path, own["subfolder"], own["weight_name"]
        return None

    def _load_ip_adapter(self) -> None:
        found = self.ip_adapter_source()
        if found is None:
            raise PermanentError("the model has no IP-Adapter; set REELFORGE_IP_ADAPTER")
        source, subfolder, weight = found
        with self.pipe_lock:  # not while another segment's call runs
            if not self._ip_adapter:
                try:
                    self.pipe.load_ip_adapter(source, subfolder=subfolder, weight_name=weight, local_files_only=True)
                except OSError as exc:
                    raise model_not_found(source, source, exc, what=f"IP-Adapter {subfolder}/{weight} of") from exc
                self._ip_adapter = True

    def _reference_conditioning(self, sources: list[str], plan: RenderPlan, guidance: float) -> dict[str, object]:
        """The cast's reference images, encoded once, and their scale; a segment without any weighs a blank image at zero."""
        references = load_references(sources) or [Image.new("RGB", (plan.width, plan.height))]
        embeds = self.pipe.prepare_ip_adapter_image_embeds(
            ip_adapter_image=[references],
            ip_adapter_image_embeds=None,
            device=self.pipe._execution_device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=guidance > 1,
        )
        return {"ip_adapter_image_embeds": embeds, IP_ADAPTER_SCALE: self.settings.ip_adapter_scale if sources else 0.0}
