"""Takes and prompt variants (issue 18 points 3 and 4): each take rendered and scored, the best in the film, another
take selected into a new film version without rendering anything."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_shared.events import JobCompleted, SegmentDelivered, SegmentGenerated
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.takes import TakeScore, rank_takes, take_seed
from support.polling import frames_rendered, poll_job

pytestmark = pytest.mark.slow  # a film of five takes and its second version through every service

FAST = {"steps": 2, "batch_size": 8}
# Polling the job every 0.1 s passes the default 60 requests a minute of a token: the limit is not tested here.
TOKENS = {"api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret", "rate_limit_per_min": 10_000}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
BOB = {"Authorization": "Bearer tok-bob-secret"}
BOARD = {
    "title": "Takes",
    "output": {"width": 128, "height": 72},
    "segments": [
        {"id": "door", "prompt": "a red door", "frames": 2, "fps": 2, "takes": 3},
        {"id": "boat", "prompt": "a green boat", "frames": 2, "fps": 2, "variants": ["a blue boat on a lake"]},
    ],
}


def _policy_choice(takes: dict[str, dict]) -> int:
    scores = {
        int(k): TakeScore(t["qa_passed"], t["qa_scores"], tuple(t["qa_failed_gates"]), t["continuity"]) for k, t in takes.items()
    }
    return next(k for k, v in rank_takes(scores).items() if v.won)


async def test_takes_and_variants_are_rendered_scored_and_the_best_selected(overrides, event_log, tmp_path: Path) -> None:
    async with local_stack(tmp_path / "state", **overrides, **FAST, **TOKENS) as stack:
        store, bucket = ObjectStore.from_settings(stack.settings), stack.settings.work_bucket
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            for field, value, board in (
                ("segments[0].takes", "9", {**BOARD, "segments": [{**BOARD["segments"][0], "takes": 9}]}),
                ("style.takes", "0", {**BOARD, "style": {"takes": 0}}),
                ("segments[0].variants", "not both", {**BOARD, "segments": [{**BOARD["segments"][0], "variants": ["x"]}]}),
            ):
                refused = await client.post("/v1/jobs", json=board)
                assert refused.status_code == 422, refused.text
                assert field in refused.text, refused.text
                assert value in refused.text, refused.text

            frames = frames_rendered()
            job = (await client.post("/v1/jobs", json=BOARD)).json()["job_id"]
            body = await poll_job(client, job, lambda b: b["status"] == "completed", attempts=6000)
            generated = sorted({(e.index, e.take) for e in event_log.of(SegmentGenerated) if e.job_id == job})
            assert generated == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]  # every take rendered once
            assert frames_rendered() - frames == 10

            door, boat = body["segments"]["1"], body["segments"]["2"]
            seeds = [door["takes"][str(k)]["seed"] for k in range(3)]
            assert seeds == [take_seed(seeds[0], k) for k in range(3)]
            assert all(t["qa_scores"] and t["reason"] for t in door["takes"].values())
            best = _policy_choice(door["takes"])
            assert door["take"] == best
            assert [k for k, t in door["takes"].items() if t["won"]] == [str(best)]
            assert door["video_key"] == door["takes"][str(best)]["video_key"]
            assert boat["takes"]["0"]["seed"] == boat["takes"]["1"]["seed"]  # variants: the prompt alone differs
            assert "blue boat" in boat["takes"]["1"]["prompt"]
            assert "green boat" in boat["takes"]["0"]["prompt"]
            assert all(t["qa_scores"] for t in boat["takes"].values())
            assert boat["take"] == _policy_choice(boat["takes"])

            report = store.get_json(bucket, Keys.report(job))
            variants = report["segments"][1]["takes"]
            assert [t["variant"] for t in variants] == [False, True]
            assert sum(t["in_film"] for t in variants) == 1
            assert [t["in_film"] for t in report["segments"][0]["takes"]] == [k == best for k in range(3)]
            html = store.get_bytes(bucket, Keys.report_html(job)).decode()
            assert 'id="segment-boat-take-1"' in html
            assert "variant 1" in html

            other = (best + 1) % 3
            select = f"/v1/jobs/{job}/segments/1/takes/{other}/select"
            assert (await client.post(select, headers=BOB)).status_code == 404  # another owner's job: not found
            for wrong in (f"/v1/jobs/{job}/segments/1/takes/3/select", f"/v1/jobs/{job}/segments/3/takes/0/select"):
                answer = await client.post(wrong)
                assert answer.status_code == 422, answer.text
            rendered, events = frames_rendered(), len(event_log.of(SegmentGenerated))
            chosen = await client.post(select)
            assert chosen.status_code == 202, chosen.text
            assert chosen.json()["film_version"] == 2
            assert chosen.json()["segments"]["1"]["take"] == other
            busy = await client.post(f"/v1/jobs/{job}/segments/2/takes/{1 - boat['take']}/select")
            assert busy.status_code == 409, busy.text  # the job is making version 2
            await event_log.wait_for(lambda: [e for e in event_log.of(JobCompleted) if e.job_id == job and e.version == 2])
            assert frames_rendered() == rendered
            assert len(event_log.of(SegmentGenerated)) == events
            body = await poll_job(client, job, lambda b: b["status"] == "completed" and "2" in b["films"], attempts=600)
            assert body["segments"]["1"]["takes"][str(other)]["reason"].startswith("selected by alice")
            again = store.get_json(bucket, Keys.report(job, 2))["segments"][0]
            assert again["take"] == other
            assert again["video_key"] == door["takes"][str(other)]["video_key"]

            # What is delivered is what is in the film: the segment's delivered copy, its segment.delivered and the job's
            # media listing follow the selection, not the policy's take.
            delivered = [e for e in event_log.of(SegmentDelivered) if e.job_id == job and e.index == 1]
            assert [(e.take, e.selected_for) for e in delivered] == [(best, None), (other, 2)]
            delivery = stack.settings.delivery_bucket
            copy = store.get_bytes(delivery, DeliveryKeys.segment(job, 1))
            assert copy == store.get_bytes(bucket, door["takes"][str(other)]["video_key"])
            assert body["segments"]["1"]["video_key"] == door["takes"][str(other)]["video_key"]
            assets = (await client.get("/v1/assets", params={"job": job})).json()["assets"]
            [row] = [a for a in assets if a["name"] == DeliveryKeys.segment(job, 1)]
            assert (row["metadata"]["take"], row["metadata"]["source_key"]) == (other, door["takes"][str(other)]["video_key"])
            assert (await client.post(select)).json()["film_version"] == 2  # the take in the film: nothing changes
