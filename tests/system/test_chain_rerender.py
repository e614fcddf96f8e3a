"""A re-render of a shot carries down its ``start_from: previous`` chain (issue 18 point 5): the shots that continue from
it render again from its new last frame, and only those; a shot outside the chain is left as it was."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_shared.events import JobCompleted, SegmentGenerated, SegmentRequested
from reelforge_shared.storage import Keys
from support.polling import poll_job

FAST = {"steps": 2, "batch_size": 8, "generation_width": 64, "api_tokens": "ana:tok-ana-secret", "rate_limit_per_min": 10_000}
ANA = {"Authorization": "Bearer tok-ana-secret"}
BOARD = {
    "title": "A chain and a shot apart",
    "output": {"width": 128, "height": 72},
    "segments": [
        {"id": "door", "prompt": "a red door opens", "frames": 2, "fps": 2},
        {"id": "hall", "prompt": "a hall behind it", "frames": 2, "fps": 2, "start_from": "previous"},
        {"id": "stair", "prompt": "a stair goes up", "frames": 2, "fps": 2, "start_from": "previous"},
        {"id": "garden", "prompt": "a garden elsewhere", "frames": 2, "fps": 2},
    ],
}


@pytest.mark.slow  # three film versions of four tiny segments through every service
async def test_a_rerender_renders_again_the_shots_that_continue_from_it_and_only_those(
    overrides, event_log, tmp_path: Path
) -> None:
    async with local_stack(tmp_path / "state", **overrides, **FAST) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ANA) as client:
            job = (await client.post("/v1/jobs", json=BOARD)).json()["job_id"]
            await poll_job(client, job, lambda body: body["status"] == "completed", attempts=6000)

            def generated_after(count: int) -> list[SegmentGenerated]:
                return [e for e in event_log.of(SegmentGenerated)[count:] if e.job_id == job]

            async def version(n: int) -> None:
                await event_log.wait_for(
                    lambda: [e for e in event_log.of(JobCompleted) if e.job_id == job and e.version == n], 600
                )

            # The chain's first shot re-rendered: the two that continue from it render again, the garden does not.
            seen = len(event_log.of(SegmentGenerated))
            answer = await client.post(f"/v1/jobs/{job}/segments/1/rerender", json={"seed": 4242})
            assert answer.status_code == 202, answer.text
            await version(2)
            again = generated_after(seen)
            assert sorted((e.index, e.attempt, e.reused_from) for e in again) == [(1, 2, None), (2, 2, None), (3, 2, None)]
            requested = {e.index: e for e in event_log.of(SegmentRequested) if e.job_id == job and e.attempt == 2}
            assert sorted(requested) == [1, 2, 3]
            for n in (2, 3):  # each from the new last frame of the shot before it
                start = requested[n].spec.start_frame
                assert start is not None
                assert start.frame_key == Keys.frame(job, n - 1, 1, attempt=2)
                assert start.shot_key == next(e.shot_key for e in again if e.index == n - 1)
            body = await poll_job(client, job, lambda b: b["status"] == "completed" and b["film_version"] == 2)
            assert [body["segments"][str(n)]["attempt"] for n in range(1, 5)] == [2, 2, 2, 1]

            # The chain's last shot re-rendered: nothing continues from it, so it alone renders.
            seen = len(event_log.of(SegmentGenerated))
            answer = await client.post(f"/v1/jobs/{job}/segments/3/rerender", json={"prompt": "a stair goes down"})
            assert answer.status_code == 202, answer.text
            await version(3)
            assert [(e.index, e.attempt) for e in generated_after(seen)] == [(3, 3)]
            body = await poll_job(client, job, lambda b: b["status"] == "completed" and b["film_version"] == 3)
            assert [body["segments"][str(n)]["attempt"] for n in range(1, 5)] == [2, 2, 3, 1]
