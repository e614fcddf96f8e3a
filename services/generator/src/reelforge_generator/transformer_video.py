"""Video transformers with a T5-family text encoder (Wan 2.x text-to-video and image-to-video): clips of 4k+1 frames.

Clip boundaries and resume are :class:`~reelforge_generator.clips.Clips`'; a clip is denoised from the
clip's own seeded noise. The text encoder reads at most ``max_sequence_length`` tokens: a prompt
longer than that is refused (a permanent error naming the field and the limit), never cut.
Image-to-video starts every clip from the segment's conditioning image (a character's reference
image, else the keyframe), as Stable Video Diffusion does (:func:`~reelforge_generator.clips.conditioning_image`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from diffusers import WanPipeline

from reelforge_generator.clips import Clips, FromImage, StartImage
from reelforge_generator.fallback import RenderPlan
from reelforge_generator.prompts import PROMPT_REPORT, PromptReport, count_tokens, model_prompt
from reelforge_generator.strategy import Clip, ModelContext
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import RenderSpec


def frames_for_call(n: int, temporal: int = 4) -> int:
    """The smallest ``temporal * k + 1`` frame count holding ``n`` frames (the video VAE compresses time after frame 0)."""
    return (max(n, 1) - 1 + temporal - 1) // temporal * temporal + 1


def fitting_tokens(tokenizer: Any, text: str, field: str, limit: int, specials: int) -> int:
    """Tokens of ``text`` by the model's own tokenizer; refused (naming ``field`` and the limit) if they and the
    ``specials`` the encoder adds (an end-of-sequence token, a chat template) exceed what the encoder reads."""
    tokens = count_tokens(tokenizer, text)
    if tokens + specials > limit:
        raise InvalidInput(f"{field}: {tokens + specials} tokens, the model's text encoder reads at most {limit}; shorten it")
    return tokens


class TransformerTextToVideo(Clips):
    kind = "text-to-video"
    default_clip_frames = 81  # Wan 2.x renders 81 frames (5 s at 16 fps)

    def __init__(self, context: ModelContext) -> None:
        super().__init__(context)
        settings, defaults = self.settings, self.defaults
        self.guidance = settings.guidance_scale if settings.guidance_scale is not None else defaults.get("default_guidance", 5.0)
        self.max_tokens = int(defaults.get("max_sequence_length", 512))

    def prepare(self, spec: RenderSpec, plan: RenderPlan) -> dict[str, object]:
        prompt = model_prompt(spec)
        tokens = fitting_tokens(self.pipe.tokenizer, prompt, "segments[].prompt", self.max_tokens, specials=1)
        fitting_tokens(self.pipe.tokenizer, spec.negative_prompt or "", "style.negative_prompt", self.max_tokens, specials=1)
        # WanPipeline's own encoding (its pipelines share it). WanImageToVideoPipeline's copy calls ftfy, an optional
        # package, unconditionally; WanPipeline's skips that Unicode clean-up where ftfy is not installed.
        embed = partial(WanPipeline._get_t5_prompt_embeds, self.pipe, max_sequence_length=self.max_tokens)
        positive = embed(prompt=prompt, device=self.pipe._execution_device)
        negative = (
            embed(prompt=spec.negative_prompt or "", device=self.pipe._execution_device) if self.guidance_for(spec) > 1 else None
        )
        conditioning: dict[str, object] = {"prompt_embeds": positive, PROMPT_REPORT: PromptReport(prompt, tokens)}
        if negative is not None:
            conditioning["negative_prompt_embeds"] = negative
        return conditioning

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        out: Any = self.pipe(
            **conditioning,
            num_frames=frames_for_call(len(frames)),
            height=plan.height,
            width=plan.width,
            num_inference_steps=self.steps_for(spec),
            guidance_scale=self.guidance_for(spec),
            generator=self.generator(spec, frames),
            output_type="pt",
        )
        return Clip(out.frames[0][: len(frames)])


class TransformerImageToVideo(FromImage):
    """Wan 2.x image-to-video: the prompt as for text-to-video, and the conditioning image."""

    def __init__(self, context: ModelContext) -> None:
        super().__init__(TransformerTextToVideo(context), StartImage.of(context))
