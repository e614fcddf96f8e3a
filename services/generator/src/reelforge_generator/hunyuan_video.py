"""HunyuanVideo 1.5 (text- and image-to-video): clips of ``temporal * k + 1`` frames, two text encoders, guidance by a guider.

The prompt reaches a Qwen2.5-VL text model inside a chat template: the pipeline reads
``tokenizer_max_length`` tokens after cropping the template's first ``prompt_template_encode_start_idx``
(the system message), so what is left for the prompt is counted with the model's own tokenizer and
template; quoted text in the prompt is read again, byte by byte, by ByT5 (at most
``tokenizer_2_max_length``). A prompt that either encoder would cut is refused, naming the field and
the limit, never cut.

Guidance is the pipeline's ``guider`` component, not a call argument, and a guider keeps the state of
the step it is in: every call gets its own guider at the segment's guidance, under a pipeline that
shares the loaded parts (nothing is loaded twice), so two segments at once never share one.

Image-to-video starts every clip from the segment's conditioning image (a character's reference image,
else the keyframe), as Stable Video Diffusion does. Its pipeline renders at a size of its own: the
bucket of the model's ``target_size`` area nearest the image's aspect, so that is the render size.
"""

from __future__ import annotations

from typing import Any

from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import extract_glyph_texts, format_text_input

from reelforge_generator.clips import Clips, FromImage, StartImage
from reelforge_generator.fallback import RenderPlan
from reelforge_generator.prompts import PROMPT_REPORT, PromptReport, count_tokens, model_prompt
from reelforge_generator.strategy import Clip, ModelContext
from reelforge_generator.transformer_video import frames_for_call
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import RenderSpec


class HunyuanTextToVideo(Clips):
    kind = "text-to-video"
    default_clip_frames = 121  # HunyuanVideo 1.5 renders 121 frames (5 s at 24 fps)

    def __init__(self, context: ModelContext) -> None:
        super().__init__(context)
        settings, defaults, pipe = self.settings, self.defaults, self.pipe
        default = defaults.get("default_guidance", pipe.guider.guidance_scale)
        self.guidance = settings.guidance_scale if settings.guidance_scale is not None else default
        self.steps = settings.steps or defaults.get("default_steps", 50)
        self.size_multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size
        self.window = pipe.tokenizer_max_length + pipe.prompt_template_encode_start_idx  # the template's tokens read

    def _fit(self, text: str, field: str) -> int:
        """``text``'s own tokens; refused where the chat template with it, or its quoted text, would be cut."""
        pipe = self.pipe
        template = format_text_input([text], pipe.system_message)
        ids = pipe.tokenizer.apply_chat_template(template, add_generation_prompt=True, tokenize=True, return_dict=True)
        tokens = count_tokens(pipe.tokenizer, text)
        if len(ids["input_ids"][0]) > self.window:
            limit = self.window - (len(ids["input_ids"][0]) - tokens)  # the template around the prompt takes the rest
            raise InvalidInput(f"{field}: {tokens} tokens, the model's text encoder reads at most {limit} of it; shorten it")
        glyphs = extract_glyph_texts(text)
        if glyphs is not None:
            limit = pipe.tokenizer_2_max_length
            count = len(pipe.tokenizer_2(glyphs, add_special_tokens=True)["input_ids"])
            if count > limit:
                raise InvalidInput(
                    f"{field}: its quoted text is {count} tokens for the lettering encoder (ByT5), which reads at most "
                    f"{limit}; shorten the quoted text"
                )
        return tokens

    def prepare(self, spec: RenderSpec, plan: RenderPlan) -> dict[str, object]:
        prompt, negative = model_prompt(spec), spec.negative_prompt or ""
        tokens = self._fit(prompt, "segments[].prompt")
        self._fit(negative, "style.negative_prompt")
        device, dtype = self.pipe._execution_device, self.pipe.transformer.dtype
        names = ("prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2")
        conditioning: dict[str, object] = dict(zip(names, self.pipe.encode_prompt(prompt, device, dtype), strict=True))
        if self.guidance_for(spec) > 1:
            embeds = self.pipe.encode_prompt(negative, device, dtype)
            conditioning |= {f"negative_{name}": value for name, value in zip(names, embeds, strict=True)}
        return conditioning | {PROMPT_REPORT: PromptReport(prompt, tokens)}

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        guidance = self.guidance_for(spec)
        guider = self.pipe.guider.new(guidance_scale=guidance, enabled=guidance > 1)  # the model's, at this guidance
        pipe: Any = type(self.pipe)(**(self.pipe.components | {"guider": guider}))
        pipe.set_progress_bar_config(disable=True)
        size = {} if "image" in conditioning else {"height": plan.height, "width": plan.width}  # image-to-video: the image's
        out = pipe(
            **conditioning,
            **size,
            num_frames=frames_for_call(len(frames), self.pipe.vae_scale_factor_temporal),
            num_inference_steps=self.steps_for(spec),
            generator=self.generator(spec, frames),
            output_type="pt",
        )
        return Clip(out.frames[0][: len(frames)])


class HunyuanImageToVideo(FromImage):
    """HunyuanVideo 1.5 image-to-video: its text-to-video calls from the conditioning image, at the pipeline's sizes."""

    def __init__(self, context: ModelContext) -> None:
        super().__init__(HunyuanTextToVideo(context), StartImage.of(context))
        self.pipe = context.pipe

    def own_size(self, spec: RenderSpec) -> tuple[int, int]:
        """(width, height): the pipeline's bucket for the output's aspect."""
        height, width = self.pipe.video_processor.calculate_default_height_width(spec.height, spec.width, self.pipe.target_size)
        return width, height
