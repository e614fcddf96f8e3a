"""Prompts arrive whole: action first, long prompts encoded in chunks, every segment its own text input."""

from __future__ import annotations

import re

import pytest
import torch

from reelforge_generator.config import GeneratorSettings
from reelforge_generator.prompts import encode_prompt
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.specs import compose_prompt, render_spec
from reelforge_shared.storyboard import load_storyboard, parse_storyboard
from support.paths import APFELBAUM


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> object:
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(tmp_path_factory.mktemp("models")), allow_test_model=True))
    renderer.setup("reelforge/tiny-sd")
    return renderer.pipe


def _board(action: str) -> object:
    return parse_storyboard(
        {
            "style": {"prompt_prefix": "documentary still", "lighting": "daylight 5500K"},
            "characters": {"karl": {"description": "young man in a blue shirt", "seed": 1000}},
            "locations": {"farm": {"description": "a farmland field", "seed": 5000}},
            "segments": [{"id": "s1", "prompt": action, "characters": ["karl"], "location": "farm"}],
        }
    )


def test_composition_puts_the_action_first_and_the_light_last() -> None:
    board = _board("plants an apple sapling")
    assert compose_prompt(board, board.segments[0]) == (
        "plants an apple sapling, young man in a blue shirt, in a farmland field, documentary still, daylight 5500K"
    )


def test_apfelbaum_prompts_have_one_mark_between_parts() -> None:
    """The parts' own closing marks go: "arms., young man" was every Apfelbaum segment's prompt."""
    board = load_storyboard(APFELBAUM.read_text())
    for index in range(1, len(board.segments) + 1):
        prompt = render_spec(board, index).prompt
        assert not re.search(r"[.,;:!?]\s*[.,;:!?]", prompt), f"segment {index}: {prompt!r}"
        assert "  " not in prompt
        assert prompt == prompt.strip()
        assert not prompt.endswith((",", "."))
    first = render_spec(board, 1).prompt
    assert "in both arms, young man in his late twenties" in first  # the action's period replaced by the joining comma


def test_parts_ending_in_any_mark_join_with_one_comma() -> None:
    board = parse_storyboard(
        {
            "style": {"prompt_prefix": "documentary still.", "lighting": "daylight 5500K, "},
            "characters": {"karl": {"description": "young man in a blue shirt;", "seed": 1000}},
            "locations": {"farm": {"description": "a farmland field!", "seed": 5000}},
            "segments": [
                {"id": "s1", "prompt": "Is it spring? Karl plants 1.2 m saplings...", "characters": ["karl"], "location": "farm"}
            ],
        }
    )
    assert compose_prompt(board, board.segments[0]) == (
        "Is it spring? Karl plants 1.2 m saplings, young man in a blue shirt, in a farmland field, documentary still, "
        "daylight 5500K"
    )


def test_speech_and_sound_tags_stay_out_of_the_picture_prompt() -> None:
    board = _board("Karl cheers. He shouts <S>Yes!<E>. <AUDCAP>Crowd cheering<ENDAUDCAP>.")
    spec = render_spec(board, 1)
    assert spec.prompt.startswith("Karl cheers. He shouts")
    assert "<" not in spec.prompt
    assert "Yes!" not in spec.prompt


def test_changing_only_the_action_changes_the_embeddings(tiny_sd: object) -> None:
    first, report = encode_prompt(tiny_sd, render_spec(_board("plants an apple sapling"), 1), guidance=7.5)
    second, _ = encode_prompt(tiny_sd, render_spec(_board("waters the apple sapling"), 1), guidance=7.5)
    assert first["prompt_embeds"].shape == second["prompt_embeds"].shape
    assert not torch.equal(first["prompt_embeds"], second["prompt_embeds"])
    assert torch.equal(first["negative_prompt_embeds"], second["negative_prompt_embeds"])
    assert report.prompt.startswith("plants an apple sapling")
    assert report.dropped == 0


@pytest.mark.slow  # encodes every segment of the example film
def test_every_apfelbaum_segment_is_encoded_whole_and_differently(tiny_sd: object) -> None:
    board = load_storyboard(APFELBAUM.read_text())
    seen, window = [], tiny_sd.tokenizer.model_max_length
    for index in range(1, len(board.segments) + 1):
        conditioning, report = encode_prompt(tiny_sd, render_spec(board, index), guidance=7.5)
        assert report.dropped == 0
        assert report.tokens > window - 2  # longer than one CLIP window, none of it dropped
        chunks = -(-report.tokens // (window - 2))
        assert conditioning["prompt_embeds"].shape[1] >= chunks * window  # every 75-token chunk encoded
        assert conditioning["negative_prompt_embeds"].shape == conditioning["prompt_embeds"].shape
        embeds = conditioning["prompt_embeds"]
        assert all(e.shape != embeds.shape or not torch.equal(e, embeds) for e in seen), f"segment {index} repeats one"
        seen.append(embeds)
