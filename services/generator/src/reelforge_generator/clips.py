"""Video models: text-to-video (ModelScope/zeroscope, AnimateDiff) and image-to-video (Stable Video Diffusion).

A video model denoises a *clip* of frames jointly, so a segment is cut into clips of
``clip_frames`` at fixed boundaries (frame ``i`` is in clip ``i // clip_frames``). A clip is the
unit of work and of resume: a restarted segment renders the clips holding missing frames, whole,
and stores only the missing frames, which come out as they did the first time. Clips of one
segment start from the same seed families (:mod:`reelforge_generator.latents`, with the wider
``video_motion``), so they share cast and place.

Image-to-video conditions on one image instead of the prompt: the first character's reference
image when the storyboard gives one, else a keyframe, frame 0 of the segment rendered by a
text-to-image model (``keyframe_model``; the tiny SVD names the tiny SD), so the prompt, style
and seeds still decide the shot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image, ImageOps

from reelforge_generator.fallback import RenderPlan
from reelforge_generator.latents import frame_generators, frame_latents
from reelforge_generator.prompts import PROMPT_REPORT, encode_prompt
from reelforge_generator.references import load_references
from reelforge_generator.strategy import Clip, Keyframer, Knobs, ModelContext, Strategy
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import RenderSpec


class Clips(Knobs):
    """Shared by both video kinds: clip boundaries and latents."""

    clip_based = True
    default_clip_frames = 16  # ModelScope and AnimateDiff are trained on 16-frame clips

    def __init__(self, context: ModelContext) -> None:
        self.pipe, self.settings, self.defaults = context.pipe, context.settings, context.defaults
        settings, defaults = self.settings, self.defaults
        self.clip_frames = settings.clip_frames or defaults.get("clip_frames", self.default_clip_frames)
        self.steps = settings.steps or defaults.get("default_steps", 30)

    min_clip_frames = 1

    def next_unit(self, spec: RenderSpec, remaining: list[int], batch: int) -> tuple[list[int], list[int]]:
        """The clip holding the first missing frame (rendered whole) and the missing frames in it (kept).

        A tail shorter than ``min_clip_frames`` is rendered with frames of the clip before it,
        which are not kept: each frame comes from its own clip only.
        """
        start = remaining[0] // self.clip_frames * self.clip_frames
        end = min(start + self.clip_frames, spec.frames)
        window = list(range(max(0, min(start, end - self.min_clip_frames)), end))
        return window, [i for i in remaining if start <= i < end]

    def generator(self, spec: RenderSpec, frames: list[int]) -> torch.Generator:
        """The clip's own noise source, named by its first frame."""
        return frame_generators(spec.seed, frames[:1])[0]

    def latents(self, spec: RenderSpec, frames: list[int], plan: RenderPlan) -> torch.Tensor:
        """(frames, channels, h, w) in the UNet's dtype on the device."""
        f = self.pipe.vae_scale_factor
        shape = (self.pipe.vae.config.latent_channels, plan.height // f, plan.width // f)
        latents = frame_latents(spec.seed, spec.character_seeds, spec.location_seed, shape, frames, self.settings.video_motion)
        return latents.to(self.pipe._execution_device, self.pipe.unet.dtype)


class TextToVideo(Clips):
    kind = "text-to-video"

    def __init__(self, context: ModelContext) -> None:
        super().__init__(context)
        settings, defaults = self.settings, self.defaults
        self.guidance = settings.guidance_scale if settings.guidance_scale is not None else defaults.get("default_guidance", 7.5)

    def prepare(self, spec: RenderSpec, plan: RenderPlan) -> dict[str, object]:
        """The prompt, encoded once for every clip (reference images steer per-frame and image-to-video models only)."""
        conditioning, report = encode_prompt(self.pipe, spec, self.guidance_for(spec))
        return conditioning | {PROMPT_REPORT: report}

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        latents = self.latents(spec, frames, plan).permute(1, 0, 2, 3).unsqueeze(0)  # (1, channels, frames, h, w)
        return Clip(
            self.pipe(
                **conditioning,
                latents=latents,
                generator=self.generator(spec, frames),
                num_frames=len(frames),
                height=plan.height,
                width=plan.width,
                num_inference_steps=self.steps_for(spec),
                guidance_scale=self.guidance_for(spec),
                output_type="pt",
            ).frames[0]
        )


@dataclass(frozen=True, slots=True)
class StartImage:
    """The image an image-to-video segment starts from: the first character's reference image, else its keyframe
    rendered by ``keyframe_model`` (the setting, else the model's default)."""

    keyframe_model: str | None
    keyframer: Keyframer | None

    @classmethod
    def of(cls, context: ModelContext) -> StartImage:
        return cls(context.settings.keyframe_model or context.defaults.get("keyframe_model"), context.keyframer)

    def __call__(self, spec: RenderSpec, plan: RenderPlan) -> Image.Image:
        return conditioning_image(spec, plan, self.keyframe_model, self.keyframer)


class FromImage:
    """Image-to-video made of a text-to-video strategy: its model calls, each segment's conditioning with the image
    its clips start from (the one the text-to-video strategy sets, where it sets one, else the :class:`StartImage`).

    Composition, not inheritance: a family's image-to-video variant is its text-to-video strategy and a start image.
    """

    kind = "image-to-video"

    def __init__(self, text: Strategy, start: StartImage) -> None:
        self.text, self.start = text, start

    @property
    def clip_based(self) -> bool:
        return self.text.clip_based

    @property
    def steps(self) -> int:
        return self.text.steps

    @property
    def guidance(self) -> float:
        return self.text.guidance

    @property
    def makes_sound(self) -> bool:
        return self.text.makes_sound

    @property
    def size_multiple(self) -> int | None:
        return self.text.size_multiple

    def own_size(self, spec: RenderSpec) -> tuple[int, int] | None:
        return self.text.own_size(spec)

    def prepare(self, spec: RenderSpec, plan: RenderPlan) -> dict[str, object]:
        conditioning = self.text.prepare(spec, plan)
        return conditioning if "image" in conditioning else conditioning | {"image": self.start(spec, plan)}

    def next_unit(self, spec: RenderSpec, remaining: list[int], batch: int) -> tuple[list[int], list[int]]:
        return self.text.next_unit(spec, remaining, batch)

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        return self.text.run(spec, conditioning, frames, plan)


class ImageToVideo(Clips):
    """Stable Video Diffusion: every clip starts from the :class:`StartImage`."""

    kind = "image-to-video"

    default_clip_frames = 14  # SVD's own clip length (SVD-XT: 25)
    min_clip_frames = 2  # SVD ramps its guidance from the first frame to the last: one frame has no ramp (and breaks its CFG)

    def __init__(self, context: ModelContext) -> None:
        super().__init__(context)
        self.start = StartImage.of(context)
        settings, defaults = self.settings, self.defaults
        self.steps = settings.steps or defaults.get("default_steps", 25)
        self.guidance = settings.guidance_scale if settings.guidance_scale is not None else defaults.get("default_guidance", 3.0)

    def prepare(self, spec: RenderSpec, plan: RenderPlan) -> dict[str, object]:
        return {"image": self.start(spec, plan)}

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        return Clip(
            self.pipe(
                image=conditioning["image"],
                latents=self.latents(spec, frames, plan).unsqueeze(0),
                generator=self.generator(spec, frames),
                num_frames=len(frames),
                height=plan.height,
                width=plan.width,
                num_inference_steps=self.steps_for(spec),
                min_guidance_scale=1.0,
                max_guidance_scale=self.guidance_for(spec),
                fps=max(1, round(spec.fps)),
                decode_chunk_size=len(frames),
                output_type="pt",
            ).frames[0]
        )


def conditioning_image(
    spec: RenderSpec, plan: RenderPlan, keyframe_model: str | None, keyframer: Keyframer | None
) -> Image.Image:
    """What an image-to-video model starts from: the first character's reference image, else the segment's keyframe.

    Cropped to the shot's aspect (not squeezed) at the render size.
    """
    if spec.reference_images:
        image = load_references(spec.reference_images[:1])[0]
    elif keyframe_model is None or keyframer is None:
        raise PermanentError(
            "image-to-video needs a conditioning image: give the segment's characters a reference_image "
            "or set REELFORGE_KEYFRAME_MODEL to a text-to-image model"
        )
    else:
        image = keyframer(keyframe_model, spec, plan)
    return ImageOps.fit(image, plan.size, Image.Resampling.LANCZOS)
