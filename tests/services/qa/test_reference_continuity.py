"""Continuity against the cast sheet (issue 18 points 3 and 6): film QA scores each segment against the sheet or
reference image of every character and location it shows, besides segment against segment; segment QA scores each
take the same way, and among takes with equal gates the one closer to the sheet goes into the film."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from reelforge_qa.film_checks import SegmentVideo, check_film
from reelforge_qa.gates import Thresholds
from reelforge_qa.handler import QaDeps, handle
from reelforge_qa.job_report import FilmInfo, JobReport, segment_result, take_results
from reelforge_qa.references import Reference, Wanted, decode_still, describe_reference
from reelforge_qa.report_html import render_html
from reelforge_qa.stability import _noisy
from reelforge_qa.synthetic import HEIGHT, WIDTH, Shot, encode, render_shot
from reelforge_shared.events import QaReport, SegmentChecked, SegmentEncoded
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.takes import take_score

FPS, FRAMES = 8.0, 24
HERO = Shot(start_x=40, walk=60, seed=1)  # a man in a blue shirt walking across a field
DRIFTED = replace(HERO, shirt=(180, 40, 35), seed=7)  # the same man whose shirt turned red
MODEL = {"name": "tiny", "pipeline": "StableDiffusionPipeline", "random_weights": True}


def _png(frame: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", frame)
    assert ok
    return data.tobytes()


def _sheet(shot: Shot) -> bytes:
    """A sheet as the generator would draw it: one still of the character (standing mid-frame), lossless."""
    return _png(render_shot(replace(shot, start_x=150, walk=0), 1)[0])


def _reference(kind: str, name: str, png: bytes) -> Reference:
    return describe_reference(Wanted(kind, name, "cast_sheet", f"jobs/j/cast/{name}.png"), decode_still(png))  # type: ignore[arg-type]


def _segment(folder: Path, sid: str, shot: Shot, location: str = "field") -> SegmentVideo:
    path = encode(render_shot(shot, FRAMES), FPS, folder / f"{sid}.mp4")
    return SegmentVideo(path, sid, ("hero",), location)


def test_a_segment_that_drifts_from_the_sheet_scores_low_and_the_matching_ones_high(tmp_path: Path) -> None:
    hero = _reference("character", "hero", _sheet(HERO))
    segments = [
        _segment(tmp_path, "s1", HERO),
        _segment(tmp_path, "s2", Shot(start_x=220, walk=-60, scale=1.3, pan_start=20, tilt=8, seed=2)),
        _segment(tmp_path, "s3", DRIFTED),
    ]
    report = check_film(segments, references=[[hero]] * 3)
    scores = {r.segment_id: r for r in report.references}
    assert set(scores) == {"s1", "s2", "s3"}
    assert all((r.kind, r.name, r.source) == ("character", "hero", "cast_sheet") for r in scores.values())
    assert scores["s1"].score is not None
    assert scores["s1"].score >= 0.9, scores["s1"]
    assert scores["s2"].score is not None
    assert scores["s2"].score >= 0.9, scores["s2"]
    assert scores["s3"].score is not None
    assert scores["s3"].score < 0.5, scores["s3"]
    assert [r.segment_id for r in report.references if r.below] == ["s3"]
    # Segment against segment is kept beside it; the sheet's score fails nothing by itself (report-only).
    assert report.characters[0].pairs
    assert not any("cast_sheet" in line or "reference" in line for line in report.failures)


def test_a_film_that_drifts_as_a_whole_passes_segment_against_segment_but_not_against_the_sheet(tmp_path: Path) -> None:
    hero = _reference("character", "hero", _sheet(HERO))
    segments = [_segment(tmp_path, "a", DRIFTED), _segment(tmp_path, "b", replace(DRIFTED, start_x=200, walk=-50, seed=8))]
    report = check_film(segments, references=[[hero]] * 2)
    assert report.characters[0].passed  # every segment is like the others
    assert [r.segment_id for r in report.references if r.below] == ["a", "b"]  # and none like the sheet


def test_a_location_is_scored_against_its_sheet(tmp_path: Path) -> None:
    field = _reference("location", "field", _png(render_shot(Shot(figure=False, seed=3), 1)[0]))
    segments = [
        _segment(tmp_path, "s1", replace(HERO, figure=False, seed=4)),
        _segment(tmp_path, "s2", Shot(location="barn", figure=False, seed=5), location="field"),  # the storyboard said field
    ]
    report = check_film(segments, references=[[field], [field]])
    scores = {r.segment_id: r.score for r in report.references}
    assert scores["s1"] is not None
    assert scores["s1"] >= 0.9, report.references
    assert scores["s2"] is not None
    assert scores["s2"] < 0.6, report.references


def test_a_still_that_is_no_picture_is_left_out() -> None:
    with pytest.raises(ValueError, match="not an image"):
        decode_still(b"not a png")


BOARD = {
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "locations": {"field": {"description": "a field", "seed": 5000}},
    "output": {"width": WIDTH, "height": HEIGHT},
    "segments": [{"id": "walk", "prompt": "walks", "characters": ["hero"], "location": "field", "frames": FRAMES,
                  "fps": FPS, "takes": 2}],
}  # fmt: skip


def _encoded(job: str, take: int, key: str) -> SegmentEncoded:
    return SegmentEncoded(
        job_id=job, index=1, segment_id="walk", take=take, takes=2, video_key=key, frame_count=FRAMES, fps=FPS,
        width=WIDTH, height=HEIGHT, duration_s=FRAMES / FPS, model=MODEL,
    )  # fmt: skip


def test_among_takes_with_equal_gates_the_one_closer_to_the_cast_sheet_wins(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    bucket, job = settings.work_bucket, "j-castqa"
    store.put_json(bucket, Keys.storyboard(job), BOARD)
    sheet = Keys.job_cast_sheet(job, "ab" * 32)
    store.put_bytes(bucket, sheet, _sheet(HERO), "image/png")
    # Take 0 shows the man in a red shirt, take 1 as the sheet has him but a little softer: both pass every gate, and
    # take 0's mean gate score is the higher (the policy before continuity put take 0 into the film).
    clean = render_shot(replace(HERO, blur=0.8), FRAMES)
    drifted = render_shot(DRIFTED, FRAMES)
    for take, frames in ((0, drifted), (1, clean)):
        key = Keys.segment_video(job, 1, 1, take)
        store.put_file(bucket, key, encode(_noisy(frames, 0.5, take), FPS, tmp_path / f"{take}.mp4"), "video/mp4")
        cast = [{"kind": "character", "name": "hero", "key": "ab" * 32, "image": sheet}]
        store.put_json(bucket, Keys.segment_generation(job, 1, 1, take), {"seed": take, "cast_sheet": cast})
    deps = QaDeps(store=store, bucket=bucket, thresholds=Thresholds(by_gate={"sharpness": 0.0}))
    checked = [e for take in (0, 1) for e in handle(_encoded(job, take, Keys.segment_video(job, 1, 1, take)), deps)]
    assert [type(e) for e in checked] == [SegmentChecked, SegmentChecked]
    reports = {e.take: e.qa for e in checked if isinstance(e, SegmentChecked)}
    assert all(qa.passed for qa in reports.values())
    assert take_score(reports[0]).mean > take_score(reports[1]).mean
    assert [r.source for r in reports[1].references] == ["cast_sheet"]
    assert reports[1].references[0].image == sheet
    low, high = reports[0].continuity, reports[1].continuity
    assert low is not None
    assert high is not None
    assert high - low > 0.5, (low, high)
    stored = QaReport.model_validate(store.get_json(bucket, Keys.segment_qa(job, 1, 1, 1)))
    assert stored.continuity == high  # kept with the take's report: the ledger, uploader and film report read it there
    takes = take_results(store, bucket, job, (1, 1, 1), 2)
    won = [t.take for t in takes if "highest" in t.reason]
    assert won == [1], [t.reason for t in takes]
    assert "take 1 is closer to the references" in takes[0].reason, takes[0].reason
    assert [t.continuity for t in takes] == [low, high]
    html = render_html(JobReport(segments=[segment_result(1, "walk", reports[1], takes=takes, take=1)], film=None))
    assert "take score" in html
    assert "character hero (cast sheet)" in html


def test_film_report_shows_each_segment_against_its_reference(tmp_path: Path) -> None:
    hero = _reference("character", "hero", _sheet(HERO))
    film_qa = check_film([_segment(tmp_path, "s1", HERO), _segment(tmp_path, "s2", DRIFTED)], references=[[hero], [hero]])
    qa = QaReport(passed=True, gates={})
    report = JobReport(
        segments=[segment_result(1, "s1", qa), segment_result(2, "s2", qa)],
        film=FilmInfo(key="f", duration_s=6.0, frame_count=48, fps=FPS, width=WIDTH, height=HEIGHT),
        film_qa=film_qa,
    )
    html = render_html(report)
    assert 'id="reference-continuity"' in html
    assert '<tr class="fail" id="reference-s2-character-hero">' in html
    assert '<tr class="" id="reference-s1-character-hero">' in html
