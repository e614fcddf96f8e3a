"""The encoder's plan of a segment, without S3 or ffmpeg: rate, pieces, crops, logo, sound and the transitions that are
encoded as soon as a neighbour exists, decided from the event and the storyboard alone."""

from __future__ import annotations

import pytest

from reelforge_encoder.ffmpeg import Codec
from reelforge_encoder.plan import plan_segment, transition_plans
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import ModelInfo, SegmentGenerated
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import parse_storyboard

CODEC = Codec("ffmpeg", preset="ultrafast")
BOARD = {
    "style": {"color_temperature_k": 5750, "grade": "documentary"},
    "output": {"width": 160, "height": 90},
    "segments": [
        {"id": "a", "prompt": "x", "frames": 6, "fps": 3},
        {"id": "b", "prompt": "x", "frames": 6, "fps": 3, "transition": {"type": "dissolve", "duration": 1.0}},
        {"id": "c", "prompt": "x", "frames": 6, "fps": 3, "audio": "jobs/j/inputs/c.wav"},
        {"id": "d", "prompt": "x <S>hello<E>", "frames": 6, "fps": 3, "transition": {"type": "fade", "duration": 2.0}},
    ],
    "deliverables": {"crops": ["9:16", "1:1"], "logo": "jobs/j/inputs/logo.png"},
}


def _event(n: int, segment_id: str | None = None, attempt: int = 1, audio: bool = False) -> SegmentGenerated:
    return SegmentGenerated(
        job_id="j",
        index=n,
        attempt=attempt,
        segment_id=segment_id or BOARD["segments"][n - 1]["id"],
        frames_prefix=Keys.frames("j", n, attempt),
        frame_count=6,
        fps=3,
        width=160,
        height=90,
        model=ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True),
        audio_key=Keys.segment_audio("j", n, attempt) if audio else None,
    )


def test_plan_cuts_a_segment_into_the_pieces_its_transitions_need() -> None:
    plan = plan_segment(_event(2), parse_storyboard(BOARD), CODEC, None, espeak=False)
    assert plan.cut is not None
    assert plan.cut.bounds == [0, 1, 6]  # the dissolve into b (3 frames) ends one frame in; no transition out of it
    assert [c.name for c in plan.crops] == ["9x16", "1x1"]
    assert [c.size for c in plan.crops] == [(50, 90), (90, 90)]
    assert plan.logo == "jobs/j/inputs/logo.png"
    assert plan.outputs == (None, "9x16", "1x1")
    assert [(s.outgoing, s.incoming, s.kind, s.overlap) for s in plan.transitions] == [(1, 2, "dissolve", 3)]
    assert (plan.out_frames, plan.out_fps, plan.film_fps) == (6, 3, 3)
    assert plan.video_key == Keys.segment_video("j", 2)
    assert plan.look.grade == "documentary"
    assert plan.colour_temperature_k == 5750


def test_plan_names_the_pieces_each_transition_is_made_of() -> None:
    spans = transition_plans(parse_storyboard(BOARD), 3)
    # into b: a's second piece (a is cut once, where the dissolve out of it starts) and b's first; into d: likewise c's.
    assert [(s.outgoing, s.tail, s.head) for s in spans] == [(1, 1, 0), (3, 1, 0)]


def test_plan_of_a_segment_at_another_rate_encodes_one_file() -> None:
    board = parse_storyboard({**BOARD, "output": {"width": 160, "height": 90, "fps": 6}})
    plan = plan_segment(_event(2), board, CODEC, None, espeak=False)
    assert (plan.out_frames, plan.out_fps) == (12, 6)
    assert plan.look.fps == 6
    # Every segment is raised to the film's 6 fps, so the film is still joined by copy.
    assert plan.cut is not None
    slower = plan_segment(_event(2), board, CODEC, 12, espeak=False)  # the encoder's film rate is 12: no join by copy
    assert slower.cut is None
    assert slower.transitions == ()
    assert slower.crops == ()
    assert slower.logo is None


def test_plan_needs_espeak_only_for_speech() -> None:
    board = parse_storyboard(BOARD)
    with_file = plan_segment(_event(3), board, CODEC, None, espeak=False)
    assert (with_file.sound.audio, with_file.sound.speech) == ("jobs/j/inputs/c.wav", None)
    assert with_file.sound.field == "segments[2].audio"
    with pytest.raises(PermanentError, match=r"segments\[3\]\.narration needs espeak-ng"):
        plan_segment(_event(4), board, CODEC, None, espeak=False)
    assert plan_segment(_event(4), board, CODEC, None, espeak=True).sound.speech == "hello"
    voiced = plan_segment(_event(4, audio=True), board, CODEC, None, espeak=False)  # the clip spoke the tag itself
    assert voiced.sound.speech is None
    assert voiced.clip_key == Keys.segment_audio("j", 4)


def test_plan_refuses_an_event_that_does_not_match_the_storyboard() -> None:
    board = parse_storyboard(BOARD)
    with pytest.raises(PermanentError, match="segment 2 is 'b' in the storyboard, the event says 'z'"):
        plan_segment(_event(2, "z"), board, CODEC, None, espeak=False)
    with pytest.raises(PermanentError, match="segment 5 is not in the storyboard's 4 segments"):
        plan_segment(_event(5, "e"), board, CODEC, None, espeak=False)


def test_span_key_names_both_attempts_and_the_recipe() -> None:
    [span, _] = transition_plans(parse_storyboard(BOARD), 3)
    incoming = Keys.segment_video("j", 2, 3)
    key = span.key(incoming, (2, 0), "9x16", 3, CODEC)
    assert key.startswith("jobs/j/segments/002/attempt-3/segment_9x16.span-from-2-")
    assert span.key(incoming, (1, 0), "9x16", 3, CODEC) != key  # another attempt of the outgoing segment
    assert span.key(incoming, (2, 1), "9x16", 3, CODEC).startswith("jobs/j/segments/002/attempt-3/segment_9x16.span-from-2t1-")
    assert span.key(incoming, (2, 0), "9x16", 3, Codec("ffmpeg", preset="medium")) != key  # another recipe


def test_segment_attempts_are_read_from_a_listing_of_its_folder() -> None:
    keys = [
        Keys.frame("j", 2, 0),
        Keys.segment_video("j", 2),
        Keys.segment_piece(Keys.segment_video("j", 2), 0),
        Keys.segment_video("j", 2, 3),
        Keys.segment_video("j", 2, 12),
        Keys.segment_video("j", 21, 4),
    ]
    assert Keys.segment_video_attempts("j", 2, keys) == [1, 3, 12]
    assert Keys.segment_video_attempts("j", 2, keys[2:3]) == []
