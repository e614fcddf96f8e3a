"""A prompt its model cannot read whole is refused at submission, with the field named and the limit stated.

Which families have a limit, and what it is, comes from :mod:`reelforge_shared.text_encoders`. The
gateway has no torch and usually no copy of the model, so it judges from what it can read cheaply:

- **The model's own files**, where a local folder or the local Hugging Face cache has them (never a
  download): ``model_index.json`` names the pipeline (so the family), ``reelforge_model.json`` may
  lower the limit, and ``tokenizer/tokenizer.json`` counts the prompt exactly, with the ``tokenizers``
  library (the model's own tokenizer, as the generator counts).
- **Else the model id** names the family, and the prompt is counted by a lower bound: its
  whitespace-separated words (these tokenizers never join two words into one token). Only a prompt
  certain not to fit is refused; the generator checks the exact count again before it renders.

The prompt checked is what the model reads: the composed one (action, cast, place, style, light),
for a model that makes sound followed by the speech and sound captions. The error names the
segment's ``prompt`` field, the part that is the segment's own.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import try_to_load_from_cache
from tokenizers import Tokenizer

from reelforge_shared.specs import render_spec, sound_prompt
from reelforge_shared.storyboard import Storyboard
from reelforge_shared.text_encoders import Family, family_of

MARKER = "reelforge_model.json"  # a Reelforge-built model's own settings (reelforge_tiny writes it)


@dataclass(frozen=True, slots=True)
class PromptLimit:
    """What one model reads: at most ``max_tokens``; ``tokenizer`` counts exactly (None: a lower bound by words)."""

    model: str
    family: Family
    max_tokens: int
    tokenizer: Tokenizer | None

    def tokens(self, prompt: str) -> int:
        """The prompt's tokens as the model reads them (special tokens included), or a lower bound without a tokenizer."""
        own = len(self.tokenizer.encode(prompt, add_special_tokens=False).ids) if self.tokenizer else len(prompt.split())
        return own + self.family.text_encoder.special_tokens

    def refusal(self, prompt: str, what: str) -> str | None:
        """Why ``prompt`` cannot be read whole, or None when it can (or might)."""
        count = self.tokens(prompt)
        if count <= self.max_tokens:
            return None
        encoder = self.family.text_encoder
        counted = f"{count} tokens" if self.tokenizer else f"at least {count} tokens ({len(prompt.split())} words)"
        return (
            f"{what} is {counted}; model {self.model!r} ({self.family.name}, {encoder.name} text encoder) reads at most "
            f"{self.max_tokens}: shorten it by {count - self.max_tokens} or more tokens, or choose a model that reads "
            "any length (Stable Diffusion families)"
        )


def _model_file(model: str, name: str) -> Path | None:
    """A file of the model from a local folder or the local Hugging Face cache; nothing is downloaded."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder / name if (folder / name).is_file() else None
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        return None
    try:
        found = try_to_load_from_cache(model, name)
    except ValueError:  # not a valid repo id
        return None
    return Path(found) if isinstance(found, str) else None


@functools.lru_cache(maxsize=16)
def _tokenizer(path: Path) -> Tokenizer:
    return Tokenizer.from_file(str(path))  # a model's files do not change under a running gateway: loaded once


def prompt_limit(model: str) -> PromptLimit | None:
    """The prompt limit of ``model``; None where its family reads any length or is not known."""
    index = _model_file(model, "model_index.json")
    pipeline = json.loads(index.read_text()).get("_class_name") if index else None
    family = family_of(pipeline=pipeline) if pipeline else family_of(model_id=model)
    if family is None:
        return None
    marker = _model_file(model, MARKER)
    max_tokens = int(json.loads(marker.read_text()).get("max_sequence_length", 0)) if marker else 0
    tokenizer_file = _model_file(model, f"{family.text_encoder.tokenizer}/tokenizer.json")
    tokenizer = _tokenizer(tokenizer_file) if tokenizer_file else None
    return PromptLimit(model, family, max_tokens or family.text_encoder.max_tokens, tokenizer)


def prompt_errors(board: Storyboard, model: str | None = None, default_model: str | None = None) -> list[dict[str, str]]:
    """``{field, message}`` for each segment whose composed prompt its model cannot read whole, and for the
    storyboard's negative prompt where one of its models cannot.

    A segment renders with its own model, else the request's ``model``, else the storyboard's, else the
    generator's (``default_model``); a segment whose model is unknown here is left to the generator.
    """
    limits: dict[str, PromptLimit | None] = {}
    errors = []
    for i, seg in enumerate(board.segments):
        chosen = seg.model or model or board.model or default_model
        if chosen is None:
            continue
        if chosen not in limits:
            limits[chosen] = prompt_limit(chosen)
        if (limit := limits[chosen]) is None:
            continue
        spec = render_spec(board, i + 1)
        if limit.family.hears_tags:
            why = limit.refusal(sound_prompt(spec), "the composed prompt with its speech and sound")
        else:
            why = limit.refusal(spec.prompt, "the composed prompt")
        if why:
            errors.append({"field": f"segments[{i}].prompt", "message": why})
    negative = board.style.negative_prompt  # encoded with the same encoder wherever guidance is on
    refusals = (limit.refusal(negative, "the negative prompt") for limit in limits.values() if limit is not None and negative)
    if why := next((r for r in refusals if r), None):
        errors.append({"field": "style.negative_prompt", "message": why})
    return errors
