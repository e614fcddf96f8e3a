"""report.html: self-contained (no scripts, nothing fetched), thumbnails inline, scores plotted, failures highlighted."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from reelforge_qa.calibration import CASES, run_case
from reelforge_qa.gates import GATES_BY_NAME, TECHNICAL, about
from reelforge_qa.job_report import (
    CastSheetImage,
    FilmInfo,
    JobReport,
    Regeneration,
    TakeResult,
    Timings,
    attempt_result,
    segment_result,
    version_changes,
)
from reelforge_qa.report_html import render_html, thumbnail_strip
from reelforge_shared.events import ReusedFrom, StartFrame
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard

START = StartFrame(frame_key="jobs/j/segments/002/frames/0011.png", shot_key="ab" * 32)


@pytest.fixture(scope="module")
def flash_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[JobReport, dict[str, bytes]]:
    """The job report of the calibration film with a flash frame in s2 (regenerated once), built as production builds it."""
    outcome = run_case(next(c for c in CASES if c.name == "flash"), tmp_path_factory.mktemp("flash"))
    segments = []
    for i, (sid, qa) in enumerate(outcome.segments.items(), start=1):
        history = [attempt_result(a, qa) for a in (1, 2)] if not qa.passed else [attempt_result(1, qa)]
        segments.append(
            segment_result(
                i,
                sid,
                qa,
                attempt=len(history),
                duration_s=2.0,
                qa_history=history,
                prompt=f"the figure walks <{sid}>",
                timings=Timings(render_s=1.5, encode_s=0.4, qa_s=0.2, peak_vram_bytes=3 * 2**30),
                start_frame=START if i == 3 else None,  # s3 continues from s2's last frame (start_from: previous)
            )
        )
    report = JobReport(title="Calibration <flash>", segments=segments, film_qa=outcome.film)
    folder = outcome.film_path.parent
    return report, {sid: thumbnail_strip(folder / f"{sid}.mp4") for sid in outcome.segments}


def test_report_html_is_self_contained(flash_report: tuple[JobReport, dict[str, bytes]]) -> None:
    html = render_html(*flash_report)
    assert html.startswith("<!doctype html>")
    assert html.count("<svg") == 1
    assert "<script" not in html.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "Calibration &lt;flash&gt;" in html  # text is escaped


def test_report_html_has_a_thumbnail_strip_per_segment(flash_report: tuple[JobReport, dict[str, bytes]]) -> None:
    html = render_html(*flash_report)
    images = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(images) == 5
    assert all(base64.b64decode(image).startswith(b"\xff\xd8") for image in images)  # JPEG


def test_report_html_highlights_failures(flash_report: tuple[JobReport, dict[str, bytes]]) -> None:
    report, thumbnails = flash_report
    html = render_html(report, thumbnails)
    assert html.count('class="card bad"') == 1
    assert 'class="badge bad">failed' in html
    assert '<tr class="fail"><td>flicker</td>' in html
    assert "flash frame at 3.00 s (frame 12, segment s2)" in html  # the film's failure, listed first
    assert 'fill="#c0392b"><title>s2 flicker' in html  # a red dot in the plot
    assert "attempt 1: flicker" in html
    assert "<td>flicker</td><td>2</td>" in html  # before/after and failure counts
    assert "<title>s1 light: " in html  # light continuity is plotted beside the gates
    # Character and location continuity per segment (its median pair): the flash segment stands out, its partners do not.
    assert 'fill="#c0392b"><title>s2 character: ' in html
    assert "<title>s1 character: " in html
    assert "<title>s1 location: " in html
    assert 'fill="#c0392b"><title>s1 character' not in html


def test_report_html_says_what_each_failed_gate_checks_and_does_from_the_gate_registry(
    flash_report: tuple[JobReport, dict[str, bytes]],
) -> None:
    report, thumbnails = flash_report
    html = render_html(report, thumbnails)
    flicker = GATES_BY_NAME["flicker"]
    assert flicker.rerender_fixes
    assert f"<td>flicker</td><td>2</td><td>{flicker.doc}</td><td>re-rendered with a new seed</td>" in html
    # The technical gate is no row of the table: the encoder's fault, flagged; a gate the table lost says nothing.
    assert about(TECHNICAL)[1] == "flagged (a new seed cannot fix it)"
    assert about("retired") == ("", "")


def test_report_html_shows_a_continuity_regeneration_before_and_after(
    flash_report: tuple[JobReport, dict[str, bytes]],
) -> None:
    report, thumbnails = flash_report
    regen = Regeneration(
        index=2,
        segment_id="s2",
        check="character:hero",
        reason="continuity: character:hero 0.34 < 0.85",
        requested_in_version=1,
        before=0.34,
        after=0.91,
        segment_before={"character:hero": 0.34, "light:field": 0.7},
        segment_after={"character:hero": 0.93, "light:field": 0.97},
        seed=8921,
        reference_segment_id="s1",
        reference_key="jobs/j/segments/002/attempt-2/reference.png",
    )
    html = render_html(report.model_copy(update={"regenerations": [regen]}), thumbnails)
    assert "Regenerated for continuity" in html
    assert "<td>8921</td>" in html
    assert "a frame of s1 (<code>jobs/j/segments/002/attempt-2/reference.png</code>)" in html
    assert "character:hero 0.340 → 0.930" in html
    assert "light:field 0.700 → 0.970" in html
    assert "Regenerated for continuity in film version 1: character:hero 0.340 → 0.930" in html


def test_thumbnail_strip_is_one_row_of_frames(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from reelforge_qa.synthetic import Shot, encode, render_shot

    video = encode(render_shot(Shot(), 8), 4, tmp_path / "s.mp4")
    strip = cv2.imdecode(np.frombuffer(thumbnail_strip(video, count=4, height=45), np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape == (45, 4 * 80, 3)


def test_report_html_shows_thresholds_prompt_and_timings(flash_report: tuple[JobReport, dict[str, bytes]]) -> None:
    report, thumbnails = flash_report
    html = render_html(report, thumbnails)
    assert "<td>flicker</td><td>0.000</td><td>0.5</td><td>FAILED</td><td>frame 4 " in html  # threshold and detail
    assert "the figure walks &lt;s1&gt;" in html  # the prompt, escaped
    assert "<b>starts from</b> the last frame of the segment before (jobs/j/segments/002/frames/0011.png)" in html
    assert "render 1.50 s · encode 0.40 s · QA 0.20 s · peak VRAM 3.0 GiB" in html
    assert "Regenerated: before and after" in html
    assert html.count("<td>attempt 2</td>") == 1
    assert JobReport.model_validate_json(report.model_dump_json()).model_dump() == report.model_dump()  # report.json round-trips


def _chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Debian's chromium, headless with no network, GPU or sandbox, on ``page`` (``--screenshot=...``, ``--dump-dom``)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: `make install` installs it (apt-get install -y chromium)"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
    ]
    return subprocess.run([chromium, *flags, *args, page.as_uri()], capture_output=True, text=True, timeout=120, check=False)


def test_report_html_renders_in_headless_chromium(flash_report: tuple[JobReport, dict[str, bytes]], tmp_path: Path) -> None:
    """Debian's chromium opens the page (no network, no GPU) and takes a screenshot; the console logs no error."""
    page = tmp_path / "report.html"
    page.write_text(render_html(*flash_report), encoding="utf-8")
    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, page, f"--screenshot={shot}")
    assert run.returncode == 0, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)]
    assert not errors, errors
    image = cv2.imread(str(shot))
    assert image is not None
    assert image.shape[:2] == (2400, 1200)
    assert float(image.std()) > 10  # a page was drawn, not a blank
    dom = _chromium(tmp_path, page, "--dump-dom")
    assert "Calibration &lt;flash&gt;" in dom.stdout
    assert "<svg" in dom.stdout
    assert dom.stdout.count('class="card ') == 5
    assert dom.stdout.count('class="start-from"') == 1  # s3 says it starts from the last frame of s2


def test_report_html_shows_the_cast_sheet_and_which_segments_it_conditioned(
    flash_report: tuple[JobReport, dict[str, bytes]], tmp_path: Path
) -> None:
    """The cast sheet's images inline in chromium's page (a missing one named), and each segment conditioned on it says so."""
    report, thumbnails = flash_report
    hero = CastSheetImage(kind="character", name="hero", key="ab" * 32, image="jobs/j/cast/hero.png")
    field = CastSheetImage(kind="location", name="field", key="cd" * 32, image="jobs/j/cast/field.png")
    segments = [s.model_copy(update={"cast_sheet": [hero, field] if i < 2 else [hero]}) for i, s in enumerate(report.segments)]
    with_sheet = report.model_copy(update={"segments": segments})
    assert [c.name for c in with_sheet.cast_sheet] == ["hero", "field"]  # once each, in film order
    assert json.loads(with_sheet.model_dump_json())["cast_sheet"][0]["image"] == "jobs/j/cast/hero.png"
    _, png = cv2.imencode(".png", np.full((64, 48, 3), (40, 90, 200), np.uint8))
    page = tmp_path / "report.html"
    page.write_text(render_html(with_sheet, thumbnails, {hero.key: png.tobytes()}), encoding="utf-8")
    dom = _chromium(tmp_path, page, "--dump-dom").stdout
    assert 'id="sheet-character-hero"' in dom
    assert 'id="sheet-location-field"' in dom
    assert dom.count('class="sheet" alt="cast sheet of') == 1  # the field's image is gone: named, no picture
    assert base64.b64encode(png.tobytes()).decode()[:60] in dom
    assert dom.count('class="cast-sheet"') == len(segments)
    assert "the cast sheet of hero, field" in dom
    # Without a sheet the section is absent.
    page.write_text(render_html(report, thumbnails), encoding="utf-8")
    assert 'id="cast-sheet"' not in _chromium(tmp_path, page, "--dump-dom").stdout


def test_report_html_shows_prompt_variants_side_by_side_with_the_winner(
    flash_report: tuple[JobReport, dict[str, bytes]], tmp_path: Path
) -> None:
    """A segment with a prompt variant: both takes in chromium's page, their scores, which is in the film and why."""
    report, thumbnails = flash_report
    first = report.segments[0]
    takes = [
        TakeResult(take=0, seed=7, prompt="a green boat", passed=True, scores={"sharpness": 0.61}, mean_score=0.61,
                   in_film=False, reason="mean score 0.610 below take 1's 0.820"),
        TakeResult(take=1, seed=7, prompt="a blue boat", variant=True, passed=True, scores={"sharpness": 0.82},
                   mean_score=0.82, in_film=True, reason="passed every gate; highest mean score 0.820"),
    ]  # fmt: skip
    segments = [first.model_copy(update={"take": 1, "takes": takes}), *report.segments[1:]]
    page = tmp_path / "report.html"
    page.write_text(render_html(report.model_copy(update={"segments": segments}), thumbnails), encoding="utf-8")
    dom = _chromium(tmp_path, page, "--dump-dom").stdout
    assert f'id="segment-{first.id}-take-0"' in dom
    assert f'id="segment-{first.id}-take-1"' in dom
    assert "variants</b>: 2 rendered, take 1 in the film" in dom
    assert "a blue boat" in dom
    assert "0.820" in dom
    assert "below take 1" in dom
    assert "(variant 1)" in dom


def test_report_says_what_was_rendered_or_reused_and_what_changed_since_the_version_before(
    flash_report: tuple[JobReport, dict[str, bytes]], store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    """Film version 2 of a job against version 1 on a real S3 server: an edited prompt rendered, a reverted prompt
    reused from another job, a take selected, two segments unchanged; report.json and Chromium's page say which and why."""
    report, thumbnails = flash_report
    job, bucket = "j-versions", settings.work_bucket
    raw = {
        "title": "t",
        "segments": [{"id": f"s{i}", "prompt": f"the figure walks {i}", "frames": 8, "fps": 4} for i in range(1, 6)],
    }
    edited = json.loads(json.dumps(raw))
    edited["segments"][1]["prompt"] = "the figure runs"  # s2: a new shot, rendered
    edited["segments"][2]["prompt"] = "the figure walks back"  # s3: a shot rendered before by another job, reused
    store.put_json(bucket, Keys.storyboard_version(job, 1), raw)
    store.put_json(bucket, Keys.storyboard(job), edited)
    keys = {s.id: f"{s.index:02d}" * 32 for s in report.segments}
    v1 = [s.model_copy(update={"shot_key": keys[s.id], "attempt": 1, "take": 0, "qa_history": []}) for s in report.segments]
    earlier = report.model_copy(
        update={
            "job_id": job,
            "segments": v1,
            "film": FilmInfo(key="k", version=1, duration_s=10, frame_count=40, fps=4, width=320, height=180),
        }
    )
    store.put_json(bucket, Keys.report(job, 1), earlier.model_dump(mode="json"))
    reused = ReusedFrom(job_id="j-older", index=3, attempt=1, shot_key="c" * 64)
    v2 = [
        v1[0],
        v1[1].model_copy(update={"shot_key": "b" * 64}),
        v1[2].model_copy(update={"shot_key": "c" * 64, "reused_from": reused}),
        v1[3].model_copy(update={"shot_key": "d" * 64, "take": 1}),
        v1[4],
    ]
    previous, changes = version_changes(store, bucket, job, 2, parse_storyboard(edited), v2)
    assert previous == 1
    assert [(c.segment_id, c.change, c.source) for c in changes] == [
        ("s2", "shot", "rendered"),
        ("s3", "shot", "reused"),
        ("s4", "take", "rendered"),
    ]
    assert changes[0].changed_fields == ["prompt"]
    assert "storyboard edited: prompt changed" in changes[0].why
    assert changes[1].reused_from == reused
    assert "job j-older, segment 3, attempt 1" in changes[1].why
    assert "take 1 selected in place of take 0" in changes[2].why
    assert changes[2].changed_fields == []
    now = earlier.model_copy(update={"segments": v2, "changes": changes, "previous_version": previous})
    as_json = json.loads(now.model_dump_json())
    assert (as_json["rendered"], as_json["reused"]) == ([1, 2, 4, 5], [3])
    assert [s["source"] for s in as_json["segments"]] == ["rendered", "rendered", "reused", "rendered", "rendered"]
    page = tmp_path / "report.html"
    page.write_text(render_html(now, thumbnails), encoding="utf-8")
    dom = _chromium(tmp_path, page, "--dump-dom").stdout
    assert "4 of 5 segments rendered for this job, 1 reused" in dom
    assert "What changed since film version 1" in dom
    assert 'id="change-s2"' in dom
    assert 'id="change-s3"' in dom
    assert 'id="change-s4"' in dom
    assert 'id="change-s1"' not in dom
    assert "reused from job j-older, segment 3, attempt 1" in dom
    assert "storyboard edited: prompt changed, so its shot key changed" in dom
    assert "The other 2 segments are the version before" in dom
