"""Storyboards are validated at the edge, with the failing field named."""

import pytest
from pydantic import ValidationError

from reelforge_shared.specs import render_spec
from reelforge_shared.storyboard import Storyboard, StoryboardInvalid, load_storyboard, parse_storyboard
from support.cpu import cpu_s
from support.paths import APFELBAUM, EXAMPLES

VALID = {
    "title": "t",
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "locations": {"field": {"description": "a field", "seed": 5000}},
    "segments": [
        {"id": "a", "prompt": "walks", "characters": ["hero"], "location": "field"},
        {"id": "b", "prompt": "sits", "transition": {"type": "dissolve", "duration": 1.0}},
    ],
}


def _fields(data: object) -> list[str]:
    with pytest.raises(StoryboardInvalid) as info:
        parse_storyboard(data)
    return [e["field"] for e in info.value.errors]


def test_plain_list_of_segments_gets_defaults() -> None:
    board = load_storyboard('[{"id": "a", "prompt": "x"}, {"id": 2, "prompt": "y"}]')
    assert [(s.id, s.frames, s.fps) for s in board.segments] == [("a", 24, 3.0), ("2", 24, 3.0)]
    assert (board.output.width, board.output.height) == (1920, 1080)


def test_transition_shorthand_and_yaml() -> None:
    board = load_storyboard("segments:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y, transition: dissolve}\n")
    assert board.segments[1].transition.type == "dissolve"
    assert board.segments[1].transition.duration == 1.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["segments"][0].pop("prompt"), "segments[0].prompt"),
        (lambda b: b["segments"][1].update(frames=0), "segments[1].frames"),
        (lambda b: b["segments"][0].update(characters=["hero", "villain"]), "segments[0].characters[1]"),
        (lambda b: b["segments"][1].update(transition={"type": "wipe"}), "segments[1].transition.type"),
        (lambda b: b["segments"][0].update(prompt="x" * 10_000_000), "segments[0].prompt"),
        (lambda b: b["segments"][0].update(location="moon"), "segments[0].location"),
        (lambda b: b["segments"][1].update(id="a"), "segments[1].id"),
        (lambda b: b.update(output={"width": 1001}), "output.width"),
        (lambda b: b["segments"][0].update(start_from="previous"), "segments[0].start_from"),
        (lambda b: b["segments"][1].update(start_from="next"), "segments[1].start_from"),
        (lambda b: b["segments"][1].update(start_from="previous", takes=2), "segments[1].start_from"),
    ],
    ids=[
        "missing-prompt",
        "zero-frames",
        "unknown-character",
        "unknown-transition",
        "10MB-prompt",
        "unknown-location",
        "duplicate-id",
        "odd-width",
        "first-starts-from-previous",
        "start-from-unknown",
        "start-from-with-takes",
    ],
)
def test_bad_storyboard_names_the_field(change, field: str) -> None:
    import copy

    data = copy.deepcopy(VALID)
    change(data)
    assert field in _fields(data)


def test_error_message_carries_the_value_but_not_all_of_it() -> None:
    with pytest.raises(StoryboardInvalid) as info:
        parse_storyboard({"segments": [{"id": "a", "prompt": "x" * 10_000_000}]})
    assert len(str(info.value)) < 500
    assert "at most 2000 characters" in str(info.value)


def test_not_yaml_is_refused() -> None:
    with pytest.raises(StoryboardInvalid, match="storyboard"):
        load_storyboard("segments: [unclosed")


def test_apfelbaum_example_is_the_specifications_film() -> None:
    board = load_storyboard(APFELBAUM.read_text())
    assert len(board.segments) == 33
    assert board.duration_s == 264.0
    assert all(s.frames == 24 and s.fps == 3 for s in board.segments)
    where = {name: [i for i, s in enumerate(board.segments, 1) if name in s.characters] for name in board.characters}
    assert where["protagonist"] == [1, 4, 5, 8, 9, 11, 13, 22, 26, 27, 28, 29]
    assert where["second_man"] == [16, 22, 23, 24, 25, 26, 27, 28, 30, 33]
    assert where["sapling"] == list(range(1, 23))
    assert where["apple_tree"] == list(range(24, 34))
    assert [i for i, s in enumerate(board.segments, 1) if s.transition.type == "dissolve"] == [24]
    assert (board.output.width, board.output.height) == (1920, 1080)
    assert all(s.location == "field" for s in board.segments)
    assert board.style.color_temperature_k in range(5500, 6001)


def test_the_cast_sheet_example_draws_its_gardener_and_orchard_and_off_draws_nothing() -> None:
    """Every segment of examples/cast_sheet names the two sheet images it is conditioned on; a character with its own
    reference image has none; ``cast_sheet: off`` (YAML) none at all."""
    text = (EXAMPLES / "cast_sheet" / "storyboard.yaml").read_text()
    board = load_storyboard(text)
    sheets = [render_spec(board, n).cast_sheet for n in range(1, len(board.segments) + 1)]
    assert all(s == sheets[0] for s in sheets)
    assert [(s.kind, s.name, s.seed) for s in sheets[0]] == [("character", "gardener", 1000), ("location", "orchard", 5000)]
    assert sheets[0][0].prompt == "an old gardener in a green coat, documentary still, soft morning light"
    own = load_storyboard(text.replace("seed: 1000}", "seed: 1000, reference_image: gardener.png}"))
    assert [s.name for s in render_spec(own, 1).cast_sheet] == ["orchard"]
    off = load_storyboard(text.replace("cast_sheet: on", "cast_sheet: off"))
    assert off.style.cast_sheet is False
    assert render_spec(off, 1).cast_sheet == []


def test_a_storyboard_with_tens_of_thousands_of_errors_is_refused_listing_twenty_at_the_cost_of_twenty() -> None:
    """Counted in CPU time (support.cpu) against pydantic's own validation of the same storyboard, measured beside it
    (least of three each): writing out only the twenty listed adds next to nothing (measured 0.8-1.0 times the
    validation); writing out all 30,000 made it 3.5 times."""
    cast = {f"c{i}": {"description": "x" * 20} for i in range(30_000)}  # 1 MB as JSON: within REELFORGE_MAX_BODY_BYTES
    board = {"characters": cast, "segments": [{"id": "a", "prompt": "x"}]}

    def validated() -> None:  # what any refusal costs: pydantic finds the 30,000 errors and hands them over
        with pytest.raises(ValidationError) as found:
            Storyboard.model_validate(board)
        found.value.errors(include_url=False, include_context=False)

    def refused() -> None:
        with pytest.raises(StoryboardInvalid) as refusal:
            parse_storyboard(board)
        errors = refusal.value.errors
        assert len(errors) == 21
        assert errors[0]["field"] == "characters.c0.seed"
        assert errors[-1]["message"] == "29980 more errors not listed"

    spent = [(cpu_s(validated), cpu_s(refused)) for _ in range(3)]
    validation, refusal = min(v for v, _ in spent), min(r for _, r in spent)
    assert refusal < 2 * validation, f"{refusal:.3f} s of CPU to refuse, {validation:.3f} s to validate"
