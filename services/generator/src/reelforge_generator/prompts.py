"""Prompts arrive whole: CLIP families encode a long prompt in 75-token chunks, and the report counts tokens.

CLIP reads 77 tokens (75 and its begin/end tokens). A longer prompt is cut into chunks of 75,
each encoded with its own begin and end token, the embeddings concatenated and the negative prompt
padded to the same length: the technique of compel, which does it here (for SDXL both text
encoders). Prompt text is passed literally: compel's weighting syntax (parentheses, brackets) is
escaped. The sound-clips note's ``<S>…<E>`` speech and ``<AUDCAP>…<ENDAUDCAP>`` sound captions are not in the
picture prompt (``reelforge_shared.specs``); they travel in the spec for a model that makes sound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from compel import CompelForSD, CompelForSDXL

from reelforge_shared.events import RenderSpec

PROMPT_REPORT = "prompt_report"  # the key of a PromptReport in a strategy's conditioning (the renderer takes it out)
COMPEL_SYNTAX = re.compile(r"([\\()\[\]])")


@dataclass(frozen=True, slots=True)
class PromptReport:
    """What the model was given, counted with its own tokenizer."""

    prompt: str
    tokens: int
    dropped: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"prompt": self.prompt, "prompt_tokens": self.tokens, "prompt_tokens_dropped": self.dropped}


def model_prompt(spec: RenderSpec) -> str:
    """The picture prompt; the speech and sound tags travel beside it (``spec.speech``, ``spec.audio_caption``)."""
    return spec.prompt


def count_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of ``text`` without the begin and end tokens, as the model's own tokenizer counts them."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _literal(text: str) -> str:
    return COMPEL_SYNTAX.sub(r"\\\1", text)


def encode_prompt(pipe: Any, spec: RenderSpec, guidance: float) -> tuple[dict[str, Any], PromptReport]:
    """The whole prompt's embeddings (and the negative prompt's when CFG is on) as pipeline arguments, and its report."""
    prompt, negative = model_prompt(spec), spec.negative_prompt or ""
    cfg = guidance > 1
    tokenizer, encoder = getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)
    if tokenizer is None or encoder is None:  # no CLIP to chunk for: the pipeline's own encoding
        out = pipe.encode_prompt(
            prompt=prompt,
            device=pipe._execution_device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=cfg,
            negative_prompt=negative or None,
        )
        names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
        return {k: v for k, v in zip(names, out, strict=False) if v is not None}, PromptReport(prompt, 0)
    dtype = encoder.dtype
    if getattr(pipe, "text_encoder_2", None) is not None:
        c = CompelForSDXL(pipe, device=pipe._execution_device)(
            _literal(prompt), negative_prompt=_literal(negative) if cfg else None
        )
        out = {"prompt_embeds": c.embeds, "pooled_prompt_embeds": c.pooled_embeds}
        if cfg:
            zeros = not negative and getattr(pipe.config, "force_zeros_for_empty_prompt", False)  # as diffusers does
            out["negative_prompt_embeds"] = torch.zeros_like(c.negative_embeds) if zeros else c.negative_embeds
            out["negative_pooled_prompt_embeds"] = (
                torch.zeros_like(c.negative_pooled_embeds) if zeros else c.negative_pooled_embeds
            )
    else:
        c = CompelForSD(pipe, device=pipe._execution_device)(
            _literal(prompt), negative_prompt=_literal(negative) if cfg else None
        )
        out = {"prompt_embeds": c.embeds}
        if cfg:
            out["negative_prompt_embeds"] = c.negative_embeds
    return {k: v.to(dtype) for k, v in out.items()}, PromptReport(prompt, count_tokens(tokenizer, prompt), dropped=0)
