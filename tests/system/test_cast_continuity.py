"""Continuity against the cast sheet through the whole stack (issue 18 points 3 and 6): the generator draws the
location's sheet, segment QA scores each take against it, the ledger ranks the takes by gates and continuity and
``GET /v1/jobs/{id}`` lists both with the reason, and film QA's report scores every segment against the sheet."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from reelforge.cli import app
from reelforge.local_run import run_storyboard
from reelforge.stack import local_stack
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from reelforge_shared.takes import TakeScore, rank_takes
from support.polling import poll_job

pytestmark = pytest.mark.slow  # a film of two tiny image-to-video takes and a second segment through every service

# The tiny image-to-video model draws the segment's first sheet and starts from it. Its frames are noise by design: a
# character is not found in noise, so the sheet scored here is a location's (colour, layout and features).
FAST = {"steps": 2, "clip_frames": 2, "generation_width": 64, "allow_test_model": True, "model": "reelforge/tiny-svd"}
TOKENS = {"api_tokens": "alice:tok-alice-secret", "rate_limit_per_min": 10_000}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
BOARD = {
    "title": "A place",
    "output": {"width": 128, "height": 72},
    "locations": {"orchard": {"description": "an apple orchard", "seed": 5000}},
    "segments": [
        {"id": "wide", "prompt": "the orchard at dawn", "location": "orchard", "frames": 2, "fps": 2, "takes": 2},
        {"id": "close", "prompt": "a branch in the orchard", "location": "orchard", "frames": 2, "fps": 2},
    ],
}


async def test_takes_are_ranked_by_continuity_against_the_sheet_and_the_film_report_scores_it(overrides, tmp_path: Path) -> None:
    async with local_stack(tmp_path / "state", **overrides, **FAST, **TOKENS) as stack:
        store, bucket = ObjectStore.from_settings(stack.settings), stack.settings.work_bucket
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            job = (await client.post("/v1/jobs", json=BOARD)).json()["job_id"]
            body = await poll_job(client, job, lambda b: b["status"] in ("completed", "failed"), attempts=6000)
            assert body["status"] == "completed", body
            takes = body["segments"]["1"]["takes"]
            assert set(takes) == {"0", "1"}
            for take in takes.values():
                assert isinstance(take["continuity"], float), take
                assert set(take["references"]) == {"location:orchard"}
                assert take["references"]["location:orchard"] == take["continuity"]
            scores = {
                int(k): TakeScore(t["qa_passed"], t["qa_scores"], tuple(t["qa_failed_gates"]), t["continuity"])
                for k, t in takes.items()
            }
            best = next(k for k, v in rank_takes(scores).items() if v.won)
            assert body["segments"]["1"]["take"] == best
            if all(t["qa_passed"] for t in takes.values()):
                assert "continuity" in takes[str(best)]["reason"], takes

            report = store.get_json(bucket, Keys.report(job))
            refs = report["film_qa"]["references"]
            assert [(r["segment_id"], r["kind"], r["name"], r["source"]) for r in refs] == [
                ("wide", "location", "orchard", "cast_sheet"),
                ("close", "location", "orchard", "cast_sheet"),
            ]
            assert all(r["image"].startswith(f"jobs/{job}/cast/") for r in refs)
            assert all(r["score"] is not None for r in refs)
            in_film = next(t for t in report["segments"][0]["takes"] if t["in_film"])
            assert in_film["continuity"] == takes[str(best)]["continuity"]
            assert refs[0]["score"] == in_film["continuity"]  # film QA and segment QA score the same take alike
            html = store.get_bytes(bucket, Keys.report_html(job)).decode()
            assert 'id="reference-wide-location-orchard"' in html


async def test_a_run_folder_keeps_the_cast_sheets_and_reelforge_qa_scores_against_them_as_film_qa(
    overrides, tmp_path: Path
) -> None:
    """`reelforge run` writes the sheets the segments were conditioned on to OUT/cast/ (named in report.json), and
    `reelforge qa OUT` scores each segment against them with film QA's function: the stack's figures."""
    board = {**BOARD, "segments": [{**s, "takes": 1} for s in BOARD["segments"]]}
    out = tmp_path / "out"
    out.mkdir()
    fast = {k: v for k, v in FAST.items() if k != "model"}
    assert await run_storyboard(parse_storyboard(board), out, model=FAST["model"], **overrides, **fast)
    report = json.loads((out / "report.json").read_text())
    sheets = report["cast_sheet"]
    assert [(c["kind"], c["name"], c["file"]) for c in sheets] == [("location", "orchard", f"cast/{sheets[0]['key']}.png")]
    assert (out / sheets[0]["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [c["file"] for s in report["segments"] for c in s["cast_sheet"]] == [sheets[0]["file"]] * 2

    result = CliRunner().invoke(app, ["qa", str(out), "--json"])
    assert result.exit_code in (0, 1), result.output  # noise frames may fail a gate; the references fail nothing
    refs = json.loads(result.stdout)["film_qa"]["references"]
    assert [(r["segment_id"], r["kind"], r["name"], r["source"], r["image"]) for r in refs] == [
        (sid, "location", "orchard", "cast_sheet", str(out / sheets[0]["file"])) for sid in ("wide", "close")
    ]
    stack = [r["score"] for r in report["film_qa"]["references"]]
    assert [r["score"] for r in refs] == pytest.approx(stack, abs=1e-3), (refs, report["film_qa"]["references"])
