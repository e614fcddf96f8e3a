"""The storyboard fields the encoder reads (colour, motion, transitions, sound, deliverables): defaults and refusals."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from reelforge_shared.storyboard import StoryboardInvalid, load_storyboard, parse_storyboard
from support.paths import APFELBAUM

VALID = {
    "segments": [
        {"id": "a", "prompt": "walks", "narration": "Er geht."},
        {"id": "b", "prompt": "sits", "audio": "b.wav", "transition": {"type": "fade", "duration": 1.0}},
    ],
}


def _fields(data: object) -> list[str]:
    with pytest.raises(StoryboardInvalid) as info:
        parse_storyboard(data)
    return [e["field"] for e in info.value.errors]


def test_an_existing_storyboard_gets_the_encoder_defaults() -> None:
    board = load_storyboard(APFELBAUM.read_bytes())
    assert board.style.grade is None
    assert board.output.fps is None
    assert board.output.interpolation == "mci"
    assert board.audio.music is None
    assert board.audio.loudness_lufs == -16.0
    assert board.deliverables.crops == ["9:16", "1:1"]
    assert board.deliverables.thumbnail
    assert board.deliverables.max_film_mb == 500
    assert all(s.narration is None and s.audio is None for s in board.segments)


def test_fade_shorthand_lasts_a_second_like_a_dissolve() -> None:
    board = load_storyboard("segments:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y, transition: fade}\n")
    assert (board.segments[1].transition.type, board.segments[1].transition.duration) == ("fade", 1.0)


def test_encoder_fields_are_accepted() -> None:
    data = copy.deepcopy(VALID) | {
        "style": {"grade": "horror", "color_temperature_k": 5750},
        "output": {"fps": 24, "interpolation": "blend"},
        "audio": {"music": "bed.mp3", "voice": "de", "loudness_lufs": -23},
        "deliverables": {"crops": ["1:1"], "logo": "logo.png", "max_film_mb": 50},
    }
    board = parse_storyboard(data)
    assert board.style.grade == "horror"
    assert board.output.fps == 24
    assert board.audio.voice == "de"
    assert board.deliverables.crops == ["1:1"]


RULES: list[tuple[Callable[[dict], object], str]] = [
    (lambda b: b["segments"][0].update(transition={"type": "fade", "duration": 1.0}), "segments[0].transition"),
    (lambda b: b["segments"][1].update(transition={"type": "fade", "duration": 9.0}), "segments[1].transition.duration"),
    (lambda b: b["segments"][0].update(audio="a.wav"), "segments[0].audio"),
    (lambda b: b["segments"][0].update(narration=""), "segments[0].narration"),
    (lambda b: b["segments"][1].update(fps=30) or b.update(output={"fps": 24}), "segments[1].fps"),
    (lambda b: b.update(output={"fps": 0}), "output.fps"),
    (lambda b: b.update(output={"interpolation": "optical-flow"}), "output.interpolation"),
    (lambda b: b.update(style={"grade": "noir"}), "style.grade"),
    (lambda b: b.update(audio={"loudness_lufs": 0}), "audio.loudness_lufs"),
    (lambda b: b.update(audio={"voice": "de; rm -rf /"}), "audio.voice"),
    (lambda b: b.update(deliverables={"crops": ["4:5"]}), "deliverables.crops[0]"),
    (lambda b: b.update(deliverables={"crops": ["1:1", "1:1"]}), "deliverables.crops"),
    (lambda b: b.update(deliverables={"max_film_mb": 0}), "deliverables.max_film_mb"),
]


@pytest.mark.parametrize(
    ("change", "field"),
    RULES,
    ids=[
        "fade-into-first",
        "fade-longer-than-segment",
        "narration-and-audio",
        "empty-narration",
        "segment-above-output-fps",
        "zero-output-fps",
        "unknown-interpolation",
        "unknown-grade",
        "loudness-out-of-range",
        "voice-not-a-name",
        "unknown-crop",
        "crop-twice",
        "zero-budget",
    ],
)
def test_bad_encoder_field_names_the_field(change: Callable[[dict], object], field: str) -> None:
    data = copy.deepcopy(VALID)
    change(data)
    assert field in _fields(data)
