"""The prompt-limit registry agrees with the diffusers pipelines it names, and finds families by class or id."""

from __future__ import annotations

import inspect

import diffusers
import pytest

from reelforge_shared.text_encoders import FAMILIES, family_of


def _pipeline_limit(pipeline: type) -> int:
    """The prompt length a pipeline encodes by default: ``max_sequence_length`` of its call, or Hunyuan's template length."""
    call = inspect.signature(pipeline.__call__).parameters
    if "max_sequence_length" in call:
        return call["max_sequence_length"].default
    return inspect.signature(pipeline._get_mllm_prompt_embeds).parameters["tokenizer_max_length"].default


@pytest.mark.parametrize("pipeline", [p for f in FAMILIES for p in f.pipelines])
def test_each_registered_pipeline_exists_and_reads_what_the_registry_says(pipeline: str) -> None:
    family = family_of(pipeline=pipeline)
    assert family is not None
    assert _pipeline_limit(getattr(diffusers, pipeline)) == family.text_encoder.max_tokens


def test_families_are_found_by_id_when_no_file_names_the_class() -> None:
    assert family_of(model_id="Wan-AI/Wan2.2-TI2V-5B-Diffusers").name == "Wan 2.x"
    assert family_of(model_id="Lightricks/LTX-2").name == "LTX-2"
    assert family_of(model_id="reelforge/tiny-ltx2-i2v").text_encoder.max_tokens == 1024
    assert family_of(model_id="stabilityai/stable-diffusion-2-1") is None  # CLIP: any length, nothing to check
    assert family_of(pipeline="StableDiffusionPipeline", model_id="reelforge/tiny-wan") is None  # the class decides
