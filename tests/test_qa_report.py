"""report.html: self-contained (no scripts, nothing fetched), thumbnails inline, scores plotted, failures highlighted."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from reelforge_qa.calibration import CASES, run_case
from reelforge_qa.report_html import render_html, thumbnail_strip


@pytest.fixture(scope="module")
def flash_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, bytes]]:
    """A job-report-shaped dict of the calibration film with a flash frame in s2 (regenerated once)."""
    outcome = run_case(next(c for c in CASES if c.name == "flash"), tmp_path_factory.mktemp("flash"))
    segments = []
    for i, (sid, qa) in enumerate(outcome.segments.items(), start=1):
        failed = [n for n, g in qa.gates.items() if not g.passed]
        segments.append({
            "index": i, "id": sid, "attempt": 2 if failed else 1, "duration_s": 2.0, "qa_passed": qa.passed,
            "qa": {n: g.score for n, g in qa.gates.items()}, "qa_failed_gates": failed,
            "gates": {n: g.model_dump() for n, g in qa.gates.items()},
            "qa_history": [{"attempt": a, "passed": False, "failed_gates": failed} for a in (1, 2)] if failed else [],
        })
    report = {"title": "Calibration <flash>", "segments": segments, "gate_failures": {"flicker": 2, "smoothness": 2},
              "film_qa": outcome.film.model_dump(mode="json")}
    folder = outcome.film_path.parent
    return report, {sid: thumbnail_strip(folder / f"{sid}.mp4") for sid in outcome.segments}


def test_report_html_is_self_contained(flash_report: tuple[dict, dict[str, bytes]]) -> None:
    html = render_html(*flash_report)
    assert html.startswith("<!doctype html>") and html.count("<svg") == 1
    assert "<script" not in html.lower() and not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "Calibration &lt;flash&gt;" in html  # text is escaped


def test_report_html_has_a_thumbnail_strip_per_segment(flash_report: tuple[dict, dict[str, bytes]]) -> None:
    html = render_html(*flash_report)
    images = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(images) == 5
    assert all(base64.b64decode(image).startswith(b"\xff\xd8") for image in images)  # JPEG


def test_report_html_highlights_failures(flash_report: tuple[dict, dict[str, bytes]]) -> None:
    report, thumbnails = flash_report
    html = render_html(report, thumbnails)
    assert html.count('class="card bad"') == 1 and 'class="badge bad">failed' in html
    assert '<tr class="fail"><td>flicker</td>' in html
    assert "flash frame at 3.00 s (frame 12, segment s2)" in html  # the film's failure, listed first
    assert 'fill="#c0392b"><title>s2 flicker' in html  # a red dot in the plot
    assert "attempt 1: flicker" in html and "<td>flicker</td><td>2</td>" in html  # history and failure counts
    assert "<title>s1 light: " in html  # light continuity is plotted beside the gates


def test_thumbnail_strip_is_one_row_of_frames(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from reelforge_qa.synthetic import Shot, encode, render_shot

    video = encode(render_shot(Shot(), 8), 4, tmp_path / "s.mp4")
    strip = cv2.imdecode(np.frombuffer(thumbnail_strip(video, count=4, height=45), np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape == (45, 4 * 80, 3)
