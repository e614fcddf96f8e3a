"""Extend a finished film from its last frame (issue 18 point 5): ``POST /v1/jobs/{id}/segments/{n}/extend``; an edit of
the shot it continues from renders it again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_shared.events import JobCompleted, SegmentGenerated, SegmentRequested
from reelforge_shared.storage import Keys, ObjectStore
from support.polling import poll_job

FAST = {"steps": 2, "batch_size": 8, "generation_width": 64, "api_tokens": "ana:tok-ana-secret,ben:tok-ben-secret"}
ANA, BEN = {"Authorization": "Bearer tok-ana-secret"}, {"Authorization": "Bearer tok-ben-secret"}
BOARD = {
    "title": "One shot",
    "output": {"width": 128, "height": 72},
    "segments": [{"id": "door", "prompt": "a red door", "frames": 2, "fps": 2}],
}


@pytest.mark.slow
async def test_extend_appends_a_segment_from_the_last_frame_as_a_new_film_version(overrides, event_log, tmp_path: Path) -> None:
    async with local_stack(tmp_path / "state", **overrides, **FAST) as stack:
        store, bucket = ObjectStore.from_settings(stack.settings), stack.settings.work_bucket
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ANA) as client:
            job = (await client.post("/v1/jobs", json=BOARD)).json()["job_id"]
            more = {"prompt": "the door opens onto a hall", "duration_s": 1.0}
            early = await client.post(f"/v1/jobs/{job}/segments/1/extend", json=more)
            assert early.status_code == 409, early.text
            assert early.json()["error"] == "job_not_finished"
            await poll_job(client, job, lambda body: body["status"] == "completed", attempts=6000)

            assert (await client.post(f"/v1/jobs/{job}/segments/1/extend", json=more, headers=BEN)).status_code == 404
            wrong = await client.post(f"/v1/jobs/{job}/segments/2/extend", json=more)
            assert wrong.status_code == 422, wrong.text
            assert wrong.json()["details"]["fields"][0]["field"] == "index"
            for bad in ({"prompt": "", "duration_s": 1.0}, {"prompt": "x", "duration_s": 0}, {"prompt": "x", "duration_s": 1e9}):
                assert (await client.post(f"/v1/jobs/{job}/segments/1/extend", json=bad)).status_code == 422
            too_long = await client.post(f"/v1/jobs/{job}/segments/1/extend", json={"prompt": "x", "duration_s": 599.0})
            assert too_long.status_code == 422
            assert "segments[1].frames" in too_long.text

            answer = await client.post(f"/v1/jobs/{job}/segments/1/extend", json=more)
            assert answer.status_code == 202, answer.text
            done = await event_log.wait_for(lambda: [e for e in event_log.of(JobCompleted) if e.version == 2], timeout=600)
            assert done[0].film_key.endswith("v2/final.mp4")
            assert done[0].segment_count == 2
            assert done[0].duration_s == pytest.approx(2.0, abs=0.1)
            request = next(e for e in event_log.of(SegmentRequested) if e.index == 2)
            assert request.attempt == 1  # a new segment's first render
            first = next(e for e in event_log.of(SegmentGenerated) if e.index == 1)
            assert request.spec.start_frame is not None
            assert request.spec.start_frame.frame_key == Keys.frame(job, 1, 1)
            assert request.spec.start_frame.shot_key == first.shot_key
            assert request.spec.frames == 2
            assert [e.index for e in event_log.of(SegmentGenerated)] == [1, 2]  # only the new segment rendered
            board = store.get_json(bucket, Keys.storyboard(job))
            assert board["segments"][1]["fps"] == 2
            assert board["segments"][1]["prompt"] == more["prompt"]
            assert board["segments"][1]["start_from"] == "previous"
            assert board["segments"][1]["id"] == "extend-2"
            body = await poll_job(client, job, lambda body: body["status"] == "completed" and body["film_version"] == 2)
            assert body["segment_count"] == 2

            # The first shot edited: the extension continues from it, so it renders again too (from the new last frame).
            board["segments"][0]["prompt"] = "a blue door"
            edited = await client.put(f"/v1/jobs/{job}/storyboard", json=board)
            assert edited.status_code == 202, edited.text
            await event_log.wait_for(lambda: [e for e in event_log.of(JobCompleted) if e.version == 3], timeout=600)
            again = [e for e in event_log.of(SegmentGenerated) if e.attempt == 2]
            assert sorted((e.index, e.reused_from) for e in again) == [(1, None), (2, None)]
            [continued] = [e for e in event_log.of(SegmentRequested) if e.index == 2 and e.attempt == 2]
            assert continued.spec.start_frame is not None
            assert continued.spec.start_frame.frame_key == Keys.frame(job, 1, 1, attempt=2)
            assert continued.spec.start_frame.shot_key == next(e.shot_key for e in again if e.index == 1)
