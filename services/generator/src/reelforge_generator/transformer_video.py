"""Video transformers with a T5-family text encoder (Wan 2.x text-to-video): clips of 4k+1 frames.

Clip boundaries and resume are :class:`~reelforge_generator.clips.Clips`'; a clip is denoised from the
clip's own seeded noise. The text encoder reads at most ``max_sequence_length`` tokens: a prompt
longer than that is refused (a permanent error naming the field and the limit), never cut.
"""

from __future__ import annotations

from typing import Any

from reelforge_generator.clips import Clips
from reelforge_generator.fallback import RenderPlan
from reelforge_generator.prompts import PROMPT_REPORT, PromptReport, count_tokens, model_prompt
from reelforge_generator.strategy import Clip, ModelContext
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import RenderSpec


def frames_for_call(n: int) -> int:
    """The smallest 4k+1 frame count holding ``n`` frames (the video VAE compresses time 4x after frame 0)."""
    return (max(n, 1) + 2) // 4 * 4 + 1


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
        tokens = count_tokens(self.pipe.tokenizer, prompt) + 1  # and the end-of-sequence token
        if tokens > self.max_tokens:
            limit = self.max_tokens
            raise InvalidInput(f"segments[].prompt: {tokens} tokens, the model's text encoder reads at most {limit}; shorten it")
        positive, negative = self.pipe.encode_prompt(
            prompt=prompt,
            negative_prompt=spec.negative_prompt or "",
            do_classifier_free_guidance=self.guidance > 1,
            max_sequence_length=self.max_tokens,
            device=self.pipe._execution_device,
        )
        conditioning: dict[str, object] = {"prompt_embeds": positive, PROMPT_REPORT: PromptReport(prompt, tokens - 1)}
        if negative is not None:
            conditioning["negative_prompt_embeds"] = negative
        return conditioning

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        out: Any = self.pipe(
            **conditioning,
            num_frames=frames_for_call(len(frames)),
            height=plan.height,
            width=plan.width,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=self.generator(spec, frames),
            output_type="pt",
        )
        return Clip(out.frames[0][: len(frames)])
