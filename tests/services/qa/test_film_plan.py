"""Film QA's plan, without S3 or decoding: the delivered take of each segment and every key the check and the report
read, decided from the film event and the storyboard alone."""

from __future__ import annotations

from pathlib import Path

from reelforge_qa.film_plan import plan_film_check
from reelforge_shared.events import FilmEncoded
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import parse_storyboard

BOARD = parse_storyboard(
    {
        "characters": {"ana": {"description": "a woman in red", "seed": 1}},
        "locations": {"park": {"description": "a park", "seed": 2}},
        "segments": [
            {"id": "a", "prompt": "x", "characters": ["ana"], "location": "park"},
            {"id": "b", "prompt": "x", "transition": {"type": "dissolve", "duration": 1.0}},
        ],
    }
)


def _film(version: int = 1, attempts: list[int] | None = None, takes: list[int] | None = None) -> FilmEncoded:
    return FilmEncoded(
        job_id="j",
        version=version,
        attempts=attempts or [],
        chosen_takes=takes or [],
        film_key=Keys.film("j", version),
        duration_s=2.0,
        frame_count=48,
        fps=24,
        width=160,
        height=90,
    )


def test_plan_names_each_segment_with_what_the_storyboard_says_of_it() -> None:
    plan = plan_film_check(_film(), BOARD)
    assert [(s.segment_id, s.characters, s.location) for s in plan.segments] == [("a", ("ana",), "park"), ("b", (), None)]
    assert [(s.transition, s.transition_s) for s in plan.segments] == [("cut", 0.0), ("dissolve", 1.0)]
    assert [s.path for s in plan.segments] == [Path("001.mp4"), Path("002.mp4")]
    assert plan.index_of == {"a": 1, "b": 2}
    assert (plan.report_key, plan.html_key, plan.meta_key) == (Keys.report("j"), Keys.report_html("j"), Keys.film_meta("j"))


def test_plan_reads_the_delivered_take_and_its_history() -> None:
    plan = plan_film_check(_film(version=3, attempts=[1, 3], takes=[0, 2]), BOARD)
    assert plan.attempts == (1, 3)
    assert plan.takes == (0, 2)
    assert plan.video_keys == (Keys.segment_video("j", 1), Keys.segment_video("j", 2, 3, 2))
    assert plan.stats_keys == (Keys.segment_film_stats("j", 1), Keys.segment_film_stats("j", 2, 3, 2))
    # b's take 2: its QA report at every attempt (its history), what segment QA passed on and the generator's record of the take.
    for key in (
        Keys.segment_qa("j", 2, 1, 2),
        Keys.segment_qa("j", 2, 2, 2),
        Keys.segment_qa("j", 2, 3, 2),
        Keys.segment_checked("j", 2, 3, 2),
        Keys.segment_generation("j", 2, 3, 2),
        Keys.segment_timings("j", 2, 3, 2),
        Keys.report("j", 2),  # what version 2 asked again, scored now
        Keys.film_meta("j", 3),
        Keys.storyboard("j"),
    ):
        assert key in plan.reads, key
    assert Keys.segment_qa("j", 1, 2) not in plan.reads
    assert len(plan.reads) == len(set(plan.reads))


def test_plan_of_a_first_version_reads_no_earlier_report() -> None:
    plan = plan_film_check(_film(), BOARD)
    assert not [k for k in plan.reads if k.endswith("report.json")]
