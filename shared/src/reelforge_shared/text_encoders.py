"""How much prompt each model family's text encoder reads: one entry per family, no torch needed.

CLIP families (Stable Diffusion 1.x/2.x, SDXL, zeroscope, AnimateDiff) take a prompt of any length:
the generator encodes it in 75-token chunks (compel). Families whose encoder is a T5/UMT5, Gemma or
Qwen model read a fixed number of tokens and would cut the rest, so a prompt longer than that is
refused, never cut: by the gateway at submission (``reelforge_gateway.prompt_fit``) and again by the
generator before it renders. A new family plugs in with one :data:`FAMILIES` entry; families not
listed here are not checked before rendering.

A family is recognised by the pipeline class its ``model_index.json`` names, else by its model id
(for a gateway that has no copy of the model). A model's ``reelforge_model.json`` may set a smaller
``max_sequence_length`` than its family's (the tiny test models do).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextEncoder:
    """A text encoder that reads at most ``max_tokens`` tokens of the prompt, special tokens included."""

    name: str
    max_tokens: int
    special_tokens: int  # what the tokenizer or the pipeline's template adds to the prompt's own tokens
    tokenizer: str = "tokenizer"  # the model's subfolder with tokenizer.json


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    pipelines: tuple[str, ...]  # diffusers pipeline classes (``_class_name`` in model_index.json)
    model_ids: tuple[str, ...]  # shell patterns of Hugging Face ids, matched case-insensitively
    text_encoder: TextEncoder
    hears_tags: bool = False  # makes sound: reads the sound-clips note's speech and sound captions after the picture prompt


UMT5 = TextEncoder("UMT5", max_tokens=512, special_tokens=1)  # WanPipeline's max_sequence_length; the end-of-sequence token

FAMILIES: tuple[Family, ...] = (
    Family("Wan 2.x", ("WanPipeline", "WanImageToVideoPipeline"), ("wan-ai/wan2.*", "reelforge/tiny-wan*"), UMT5),
    # LTX2Pipeline's max_sequence_length; Gemma's begin-of-sequence token.
    Family(
        "LTX-2",
        ("LTX2Pipeline", "LTX2ImageToVideoPipeline"),
        ("lightricks/ltx-2*", "reelforge/tiny-ltx2*"),
        TextEncoder("Gemma 3", max_tokens=1024, special_tokens=1),
        hears_tags=True,
    ),
    # HunyuanVideo15Pipeline reads 1000 tokens of its chat template after the system message: the user turn's
    # markers and the assistant's opening (about 8 tokens) come out of them.
    Family(
        "HunyuanVideo 1.5",
        ("HunyuanVideo15Pipeline", "HunyuanVideo15ImageToVideoPipeline"),
        ("hunyuanvideo-community/hunyuanvideo-1.5*", "tencent/hunyuanvideo-1.5*", "reelforge/tiny-hunyuan*"),
        TextEncoder("Qwen2.5-VL", max_tokens=1000, special_tokens=8),
    ),
)


def family_of(pipeline: str | None = None, model_id: str | None = None) -> Family | None:
    """The family of a pipeline class, else of a model id; None for a family without a prompt limit or an unknown one."""
    for family in FAMILIES:
        if pipeline is not None and pipeline in family.pipelines:
            return family
    if pipeline is None and model_id is not None:
        for family in FAMILIES:
            if any(fnmatch.fnmatch(model_id.lower(), pattern) for pattern in family.model_ids):
                return family
    return None
