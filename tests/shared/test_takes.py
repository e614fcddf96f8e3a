"""Takes (reelforge_shared.takes): the seed rule, the policy, the storyboard fields and the ledger's fold of takes."""

from __future__ import annotations

import pytest

from reelforge_shared.events import (
    FilmRequested,
    QaGate,
    QaReport,
    ReferenceScore,
    SegmentChecked,
    SegmentDelivered,
    SegmentFailed,
    SegmentTakeSelected,
)
from reelforge_shared.jobs import JobRecord
from reelforge_shared.jobs.transitions import fold, resume, resume_events, select_take
from reelforge_shared.specs import render_spec, segment_requests
from reelforge_shared.storyboard import StoryboardInvalid, parse_storyboard
from reelforge_shared.takes import TAKE_SEED_STRIDE, TakeScore, rank_takes, take_seed

MODEL = {"name": "tiny", "pipeline": "StableDiffusionPipeline", "random_weights": True}


def _board(**segment: object) -> dict:
    return {"segments": [{"id": "a", "prompt": "a red door", "seed": 7, **segment}, {"id": "b", "prompt": "a sky"}]}


def test_take_zero_is_the_segments_own_seed_and_every_take_differs() -> None:
    assert take_seed(7, 0) == 7
    assert take_seed(7, 1) == (7 + TAKE_SEED_STRIDE) % 2**32
    assert len({take_seed(2**32 - 1, k) for k in range(8)}) == 8
    assert TAKE_SEED_STRIDE % 2 == 1


def test_takes_one_renders_what_a_segment_without_takes_renders() -> None:
    plain, one = parse_storyboard(_board()), parse_storyboard(_board(takes=1))
    assert render_spec(plain, 1) == render_spec(one, 1, take=0)
    assert [r.take for r in segment_requests(one, "j", 1)] == [0]


def test_three_takes_are_three_requests_with_derived_seeds() -> None:
    board = parse_storyboard({**_board(takes=3), "style": {"takes": 2}})
    requests = segment_requests(board, "j", 1)
    assert [(r.take, r.takes, r.spec.seed) for r in requests] == [(k, 3, take_seed(7, k)) for k in range(3)]
    assert len({r.dedup_id() for r in requests}) == 3
    assert [r.take for r in segment_requests(board, "j", 2)] == [0, 1]  # style.takes for a segment without its own


def test_variants_are_takes_with_the_segments_seed_and_their_own_prompt() -> None:
    board = parse_storyboard(_board(variants=["a blue door"]))
    requests = segment_requests(board, "j", 1)
    assert [(r.take, r.spec.seed) for r in requests] == [(0, 7), (1, 7)]
    assert requests[0].spec.prompt.startswith("a red door")
    assert requests[1].spec.prompt.startswith("a blue door")


@pytest.mark.parametrize(
    ("board", "field", "said"),
    [
        (_board(takes=9), "segments[0].takes", "9"),
        (_board(takes=0), "segments[0].takes", "0"),
        ({**_board(), "style": {"takes": 12}}, "style.takes", "12"),
        (_board(takes=2, variants=["x"]), "segments[0].variants", "not both"),
        (_board(variants=[str(k) for k in range(8)]), "segments[0].variants", "7"),
    ],
)
def test_takes_out_of_range_are_refused_naming_the_field_and_value(board: dict, field: str, said: str) -> None:
    with pytest.raises(StoryboardInvalid) as refused:
        parse_storyboard(board)
    assert any(e["field"] == field and said in e["message"] for e in refused.value.errors), refused.value.errors


def test_the_policy_prefers_passing_takes_then_the_higher_mean_then_the_lower_take() -> None:
    verdicts = rank_takes(
        {
            0: TakeScore(False, {"sharpness": 0.99, "technical": 1.0}, ("sharpness",)),
            1: TakeScore(True, {"sharpness": 0.6, "technical": 1.0}),
            2: TakeScore(True, {"sharpness": 0.7, "technical": 1.0}),
            3: TakeScore(True, {"sharpness": 0.7, "technical": 1.0}),
        }
    )
    assert [k for k, v in verdicts.items() if v.won] == [2]
    assert "failed sharpness" in verdicts[0].reason
    assert "below take 2" in verdicts[1].reason
    assert "lower take wins a tie" in verdicts[3].reason
    assert rank_takes({0: TakeScore(False, {"a": 0.2}), 1: TakeScore(False, {"a": 0.3})})[1].won


def test_among_takes_with_equal_gates_the_one_closer_to_the_cast_sheet_wins() -> None:
    gates = {"sharpness": 0.8, "technical": 1.0}
    verdicts = rank_takes({0: TakeScore(True, gates, (), 0.31), 1: TakeScore(True, gates, (), 0.94), 2: TakeScore(True, gates)})
    assert verdicts[0].won  # take 2 has no continuity: every take is compared by its gates alone, a tie to the lowest
    verdicts = rank_takes({0: TakeScore(True, gates, (), 0.31), 1: TakeScore(True, gates, (), 0.94)})
    assert [k for k, v in verdicts.items() if v.won] == [1]
    assert "continuity 0.940" in verdicts[1].reason
    assert "take 1 is closer to the references (0.940 against 0.310)" in verdicts[0].reason


def test_the_take_score_weighs_gates_and_continuity_equally() -> None:
    sharp_but_off = TakeScore(True, {"sharpness": 1.0}, (), 0.5)  # 0.5 * 1.0 + 0.5 * 0.5 = 0.75
    soft_but_right = TakeScore(True, {"sharpness": 0.6}, (), 0.95)  # 0.5 * 0.6 + 0.5 * 0.95 = 0.775
    assert rank_takes({0: sharp_but_off, 1: soft_but_right})[1].won
    assert rank_takes({0: sharp_but_off, 1: TakeScore(True, {"sharpness": 0.5}, (), 0.95)})[0].won  # 0.725
    assert rank_takes({0: TakeScore(False, {"sharpness": 0.1}, ("sharpness",), 1.0), 1: sharp_but_off})[1].won


def _qa(score: float, continuity: float | None = None) -> QaReport:
    passed = score >= 0.5
    references = [] if continuity is None else [
        ReferenceScore(kind="character", name="hero", source="cast_sheet", image="jobs/j/cast/k.png", score=continuity)
    ]  # fmt: skip
    return QaReport(passed=passed, gates={"sharpness": QaGate(score=score, threshold=0.5, passed=passed)}, references=references)


def _checked(take: int, score: float, continuity: float | None = None) -> SegmentChecked:
    return SegmentChecked(
        job_id="j", index=1, segment_id="a", take=take, takes=3, video_key=f"v{take}", duration_s=1.0,
        qa=_qa(score, continuity), report_key="r", model=MODEL,
    )  # fmt: skip


def test_the_ledger_lists_each_takes_continuity_and_puts_the_closest_to_the_sheet_in_the_film() -> None:
    record = JobRecord(job_id="j", segment_count=1)
    for request in segment_requests(parse_storyboard(_board(takes=3)), "j", 1):
        fold(record, request)
    for take, continuity in ((0, 0.2), (1, 0.9), (2, 0.6)):
        fold(record, _checked(take, 0.8, continuity))
    seg = record.segments[1]
    assert [seg.takes[k].continuity for k in range(3)] == [0.2, 0.9, 0.6]
    assert seg.takes[1].references == {"character:hero": 0.9}
    fold(record, _delivered(_checked(1, 0.8, 0.9)))
    assert [seg.takes[k].won for k in range(3)] == [False, True, False]
    assert "continuity 0.900" in (seg.takes[1].reason or "")
    assert "below take 1's" in (seg.takes[0].reason or "")
    assert "closer to the references" in (seg.takes[2].reason or "")


def test_the_ledger_waits_for_every_take_then_records_the_winner_and_why_each_lost() -> None:
    record = JobRecord(job_id="j", segment_count=1)
    board = parse_storyboard(_board(takes=3))
    for request in segment_requests(board, "j", 1):
        fold(record, request)
    for take, score in ((0, 0.4), (1, 0.9)):
        fold(record, _checked(take, score))
    assert record.segments[1].stage == "queued"  # take 2 is not even generated yet
    fold(record, _checked(2, 0.8))
    assert record.segments[1].stage == "checked"
    fold(record, _delivered(_checked(1, 0.9)))
    seg = record.segments[1]
    assert (seg.stage, seg.take, seg.video_key) == ("delivered", 1, "v1")
    assert [seg.takes[k].won for k in range(3)] == [False, True, False]
    assert seg.takes[1].seed == take_seed(7, 1)
    assert "failed sharpness" in (seg.takes[0].reason or "")
    assert record.film_version == 1
    assert record.outbox == []


def _delivered(checked: SegmentChecked) -> SegmentDelivered:
    return SegmentDelivered.follow(
        checked, video_key=checked.video_key, delivery_bucket="d", delivery_key="k", url="u", duration_s=1.0,
        qa=checked.qa, model=MODEL,
    )  # fmt: skip


def test_selecting_a_take_makes_a_film_version_without_a_render() -> None:
    record = JobRecord(job_id="j", segment_count=1)
    for request in segment_requests(parse_storyboard(_board(takes=3)), "j", 1):
        fold(record, request)
    for take in range(3):
        fold(record, _checked(take, 0.6 + take / 10))
    fold(record, _delivered(_checked(2, 0.8)))
    assert select_take(record, 1, 0) is not None  # the job is not completed yet
    record.status, record.film_version = "completed", 1
    assert "not rendered" in (select_take(record, 1, 5) or "")
    assert select_take(record, 1, 0, by="alice") is None
    assert (record.film_version, record.status, record.segments[1].take, record.segments[1].video_key) == (
        2, "film_encoding", 0, "v0",
    )  # fmt: skip
    # The selected take is delivered in place of the policy's (what is delivered is what is in the film); its delivery
    # asks for the film version.
    [selected] = record.outbox
    assert isinstance(selected, SegmentTakeSelected)
    assert (selected.index, selected.attempt, selected.take, selected.version, selected.by) == (1, 1, 0, 2, "alice")
    assert record.segments[1].stage == "checked"
    assert select_take(record, 1, 2) is not None  # making version 2: not completed
    delivered = _delivered(_checked(0, 0.6)).model_copy(update={"selected_for": 2})
    [film] = fold(record, delivered)
    assert isinstance(film, FilmRequested)
    assert film.dedup_id() == record.film_request().dedup_id()
    assert (film.version, film.delivered_take(1)) == (2, 0)
    assert (record.film_version, record.segments[1].stage, record.segments[1].take) == (2, "delivered", 0)
    assert (record.segments[1].takes[0].reason or "").startswith("selected by alice")  # the delivery keeps who chose
    assert "take 0 selected by alice instead" in (record.segments[1].takes[2].reason or "")
    assert delivered.dedup_id() != _delivered(_checked(0, 0.6)).dedup_id()  # once per film version it goes into


def test_a_resumed_segment_with_takes_requests_every_take_again() -> None:
    board = parse_storyboard(_board(takes=2))
    record = JobRecord(job_id="j", segment_count=2)
    requests = [r for n in (1, 2) for r in segment_requests(board, "j", n)]
    for request in requests:
        fold(record, request)
    fold(record, SegmentFailed.follow(requests[1], stage="generator", error="out of memory"))  # take 1 of segment 1
    assert record.status == "failed"
    resume(record, board)
    requested = sorted((e.index, e.take) for e in resume_events(record, board))  # type: ignore[attr-defined]
    assert requested == [(1, 0), (1, 1)]  # segment 2 was on its way: left alone
