"""Continuity drives regeneration (issue 11, point 2), on a real S3 server: film QA of a film whose s5 wears a red shirt
asks for s5 again (segment.rerender_requested, the API's re-render path) with a new seed and delivers this version
flagged; the next version's report shows the hero's score before and after."""

from __future__ import annotations

from pathlib import Path

from reelforge_qa.calibration import CASES, CLEAN, FPS, FRAMES, build
from reelforge_qa.film_checks import FilmThresholds
from reelforge_qa.handler import QaDeps, handle_film
from reelforge_qa.job_report import JobReport
from reelforge_qa.scores import Expected, Thresholds, score_video
from reelforge_qa.synthetic import HEIGHT, WIDTH
from reelforge_shared.events import FilmChecked, FilmEncoded, SegmentRerenderRequested
from reelforge_shared.settings import CommonSettings
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard

BOARD = {
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "locations": {"field": {"description": "a field", "seed": 5000}, "barn": {"description": "a barn", "seed": 6000}},
    "output": {"width": WIDTH, "height": HEIGHT},
    "segments": [
        {"id": p.segment_id, "prompt": "walks", "characters": list(p.characters), "location": p.location, "frames": FRAMES,
         "fps": FPS, "transition": {"type": p.transition, "duration": p.transition_s}} for p in CLEAN
    ],
}


def _store_version(store: ObjectStore, bucket: str, job: str, folder: Path, attempts: dict[str, int]) -> FilmEncoded:
    """The segments as delivered (markers) and the film, as the services would have left them."""
    videos, film = build(next(c for c in CASES if c.name == folder.name), folder)
    for n, video in enumerate(videos, start=1):
        attempt = attempts.get(video.segment_id, 1)
        key = Keys.segment_video(job, n, attempt)
        store.put_file(bucket, key, video.path, "video/mp4")
        qa = score_video(video.path, Expected(WIDTH, HEIGHT, FPS, FRAMES), Thresholds())
        store.put_json(bucket, Keys.segment_qa(job, n, attempt), qa.model_dump(mode="json"))
        store.put_json(bucket, Keys.delivered_marker(job, n), {
            "index": n, "segment_id": video.segment_id, "attempt": attempt, "qa": qa.model_dump(mode="json"), "video_key": key,
            "delivery_key": f"{job}/{n:03d}.mp4", "duration_s": FRAMES / FPS, "model": {"name": "tiny"},
        })
    version = max(attempts.values(), default=1)
    film_key = Keys.film(job, version)
    store.put_file(bucket, film_key, film, "video/mp4")
    return FilmEncoded(job_id=job, version=version, film_key=film_key, duration_s=len(CLEAN) * FRAMES / FPS,
                       frame_count=len(CLEAN) * FRAMES, fps=FPS, width=WIDTH, height=HEIGHT)


def test_a_segment_breaking_continuity_is_rendered_again(store: ObjectStore, settings: CommonSettings, tmp_path: Path) -> None:
    job, bucket = "j-continuity", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), BOARD)
    deps = QaDeps(store=store, bucket=bucket, thresholds=Thresholds(), max_attempts=2, film_thresholds=FilmThresholds())

    events = handle_film(_store_version(store, bucket, job, tmp_path / "shirt", {}), deps)
    [redo] = [e for e in events if isinstance(e, SegmentRerenderRequested)]
    [checked] = [e for e in events if isinstance(e, FilmChecked)]
    assert (redo.index, redo.job_id) == (5, job) and redo.reason.startswith("continuity: character:hero")
    assert redo.seed == render_spec(parse_storyboard(BOARD), 5, 2).seed  # a new seed: the second attempt's
    assert not checked.passed  # this version is delivered, flagged
    assert handle_film(_store_version(store, bucket, job, tmp_path / "shirt", {}), deps)[0].event_id == redo.event_id  # once

    # The re-rendered s5 (attempt 2) is clean: the next film version's report shows the hero before and after.
    handle_film(_store_version(store, bucket, job, tmp_path / "clean", {"s5": 2}), deps)
    report = JobReport.model_validate(store.get_json(bucket, Keys.report(job, 2)))
    [regen] = report.regenerations
    assert (regen.segment_id, regen.check, regen.requested_in_version) == ("s5", "character:hero", 1)
    assert regen.before is not None and regen.after is not None and regen.before < 0.85 <= regen.after
    assert "Regenerated for continuity" in store.get_bytes(bucket, Keys.report_html(job, 2)).decode()
