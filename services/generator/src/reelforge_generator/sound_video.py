"""Video models that make sound with the picture (LTX-2): one prompt, a clip of frames and its audio.

The model hears what the segment says and sounds like: the sound-clips note's ``<S>…<E>`` speech and
``<AUDCAP>…<ENDAUDCAP>`` sound captions, taken out of the picture prompt by the storyboard
(``spec.speech``, ``spec.audio_caption``), go back into this model's prompt as plain sentences.
The Gemma text encoder reads at most ``max_sequence_length`` tokens (the pipeline pads every prompt
to it): a longer prompt is refused, naming the field and the limit, never cut.

Each call returns its clip's waveform, cut or padded with silence to the clip's frames' duration,
so the clips of a segment join into one track as long as the segment.

Image-to-video is the same weights under ``LTX2ImageToVideoPipeline``. A text-to-video LTX-2 starts
from the first character's reference image when the segment has one (the image-to-video pipeline over
the loaded parts, nothing loaded twice); a model saved as image-to-video always starts from an image:
that reference image, else a keyframe rendered by a text-to-image model, as Stable Video Diffusion does.
"""

from __future__ import annotations

import io
import math
import wave
from typing import Any

import torch
from diffusers import LTX2ImageToVideoPipeline

from reelforge_generator.clips import Clips, FromImage, StartImage, conditioning_image
from reelforge_generator.fallback import RenderPlan
from reelforge_generator.prompts import PROMPT_REPORT, PromptReport, count_tokens
from reelforge_generator.strategy import Clip, ModelContext
from reelforge_generator.transformer_video import fitting_tokens
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import RenderSpec
from reelforge_shared.specs import sound_prompt

DEFAULT_MAX_TOKENS = 1024  # LTX2Pipeline's max_sequence_length
PIPELINE_MULTIPLE = 32  # LTX2Pipeline refuses sizes that are not multiples of 32
# The pipeline's own sampling knobs a model may set in its marker (the tiny model turns the extra passes off).
CALL_KNOBS = (
    "stg_scale",
    "modality_scale",
    "guidance_rescale",
    "audio_guidance_scale",
    "audio_stg_scale",
    "audio_modality_scale",
    "audio_guidance_rescale",
    "spatio_temporal_guidance_blocks",
    "use_cross_timestep",
)


def frames_for_call(n: int, temporal: int) -> int:
    """The smallest ``temporal * k + 1`` frame count holding ``n`` frames (the VAE compresses time after frame 0)."""
    return (max(n, 1) - 1 + temporal - 1) // temporal * temporal + 1


def fit_audio(audio: torch.Tensor, samples: int) -> torch.Tensor:
    """``(channels, samples)``: cut, or padded with silence, to ``samples``."""
    if audio.shape[-1] >= samples:
        return audio[..., :samples]
    return torch.nn.functional.pad(audio, (0, samples - audio.shape[-1]))


def wav_bytes(audio: torch.Tensor, sample_rate: int) -> bytes:
    """``(channels, samples)`` floats in -1..1 -> a 16-bit PCM WAV file."""
    pcm = (audio.float().clamp(-1, 1) * 32767).round().to(torch.int16).T.contiguous().numpy()  # interleaved
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(audio.shape[0])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


class SoundTextToVideo(Clips):
    kind = "text-to-video"
    makes_sound = True
    default_clip_frames = 121  # LTX-2: 5 s at 24 fps

    def __init__(self, context: ModelContext) -> None:
        super().__init__(context)
        settings, defaults = self.settings, self.defaults
        self.guidance = settings.guidance_scale if settings.guidance_scale is not None else defaults.get("default_guidance", 3.0)
        self.max_tokens = int(defaults.get("max_sequence_length", DEFAULT_MAX_TOKENS))
        self.knobs = {k: defaults[k] for k in CALL_KNOBS if k in defaults}
        self.sample_rate = int(self.pipe.vocoder.config.output_sampling_rate)
        # The pipeline asks for multiples of 32 (the real VAE's downscale), whatever the model's own downscale.
        downscale = self.pipe.vae_spatial_compression_ratio * self.pipe.transformer_spatial_patch_size
        self.size_multiple = math.lcm(PIPELINE_MULTIPLE, downscale)
        # The same parts under the image-to-video pipeline, for segments that bring a reference image.
        self.image_pipe = self.pipe
        if not isinstance(self.pipe, LTX2ImageToVideoPipeline):
            self.image_pipe = LTX2ImageToVideoPipeline(**{k: v for k, v in self.pipe.components.items() if v is not None})
            self.image_pipe.set_progress_bar_config(disable=True)

    def _cfg(self, spec: RenderSpec) -> bool:
        audio = self.knobs.get("audio_guidance_scale", 7.0)  # the pipeline's default
        return self.guidance_for(spec) > 1 or (audio is not None and audio > 1)

    def prepare(self, spec: RenderSpec, plan: RenderPlan) -> dict[str, object]:
        prompt = sound_prompt(spec)
        tokens = count_tokens(self.pipe.tokenizer, prompt)
        special = len(self.pipe.tokenizer("")["input_ids"])  # the begin token Gemma puts first
        if tokens + special > self.max_tokens:
            raise InvalidInput(
                f"segments[].prompt: {tokens + special} tokens with its speech and sound captions, "
                f"the model's text encoder reads at most {self.max_tokens}; shorten it"
            )
        fitting_tokens(self.pipe.tokenizer, spec.negative_prompt or "", "style.negative_prompt", self.max_tokens, special)
        positive, mask, negative, negative_mask = self.pipe.encode_prompt(
            prompt=prompt,
            negative_prompt=spec.negative_prompt or "",
            do_classifier_free_guidance=self._cfg(spec),
            max_sequence_length=self.max_tokens,
            device=self.pipe._execution_device,
        )
        conditioning: dict[str, object] = {
            "prompt_embeds": positive,
            "prompt_attention_mask": mask,
            PROMPT_REPORT: PromptReport(prompt, tokens),
        }
        if negative is not None:
            conditioning |= {"negative_prompt_embeds": negative, "negative_prompt_attention_mask": negative_mask}
        if spec.reference_images:  # the first character's reference image: the shot starts from it
            conditioning["image"] = conditioning_image(spec, plan, None, None)
        return conditioning

    def call(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Any:
        pipe = self.image_pipe if "image" in conditioning else self.pipe
        return pipe(
            **conditioning,
            num_frames=frames_for_call(len(frames), self.pipe.vae_temporal_compression_ratio),
            frame_rate=spec.fps,
            height=plan.height,
            width=plan.width,
            num_inference_steps=self.steps_for(spec),
            guidance_scale=self.guidance_for(spec),
            generator=self.generator(spec, frames),
            max_sequence_length=self.max_tokens,
            output_type="pt",
            **self.knobs,
        )

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        out = self.call(spec, conditioning, frames, plan)
        samples = round(len(frames) / spec.fps * self.sample_rate)
        audio = fit_audio(out.audio[0].float().clamp(-1, 1).cpu(), samples)
        return Clip(out.frames[0][: len(frames)], audio=audio, sample_rate=self.sample_rate)


class SoundImageToVideo(FromImage):
    """LTX-2 image-to-video: the prompt and the conditioning image (the first character's reference image, else the
    segment's keyframe), with its sound."""

    def __init__(self, context: ModelContext) -> None:
        super().__init__(SoundTextToVideo(context), StartImage.of(context))
