"""Nothing renders twice (issue 18 point 2): an edited storyboard renders only its changed shots, per owner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_gateway.submit import submit_job
from reelforge_shared.bus import Bus
from reelforge_shared.events import JobCompleted, SegmentGenerated
from reelforge_shared.jobs import JobRecord, Ledger
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from support.polling import frames_rendered, poll_job

SHOTS = ["a red door", "a blue sky", "a green field", "a grey road", "a white wall", "a black cat"]
FAST = {"steps": 2, "batch_size": 8}


def _board(prompts: list[str]) -> dict:
    segments = [{"id": f"s{i}", "prompt": p, "frames": 2, "fps": 2} for i, p in enumerate(prompts, start=1)]
    return {"title": "Six shots", "output": {"width": 128, "height": 72}, "segments": segments}


async def _completed(ledger: Ledger, job_id: str) -> JobRecord:
    async def watch() -> JobRecord:
        async for record in ledger.watch(job_id, heartbeat_s=1.0):
            if record is not None and record.status == "completed":
                return record
        raise AssertionError(f"job {job_id}: the ledger stopped")

    return await asyncio.wait_for(watch(), timeout=60)


@pytest.mark.slow
async def test_an_edited_storyboard_renders_only_its_changed_shot(overrides, event_log, tmp_path: Path) -> None:
    async with local_stack(tmp_path / "state", **overrides, **FAST) as stack:
        settings = stack.settings
        bus = await Bus.connect(settings)
        store = ObjectStore.from_settings(settings)
        bucket = settings.work_bucket

        async def film(prompts: list[str], owner: str) -> tuple[str, list[SegmentGenerated], float]:
            before_frames, before_events = frames_rendered(), len(event_log.of(SegmentGenerated))
            job = await submit_job(
                parse_storyboard(_board(prompts)), bus=bus, store=store, bucket=bucket, owner=owner, reuse=True
            )
            await event_log.wait_for(lambda: any(e.job_id == job.job_id for e in event_log.of(JobCompleted)), timeout=600)
            generated = [e for e in event_log.of(SegmentGenerated)[before_events:] if e.job_id == job.job_id]
            return job.job_id, generated, frames_rendered() - before_frames

        first, generated, frames = await film(SHOTS, "ana")
        assert len(generated) == 6
        assert all(e.reused_from is None and e.shot_key for e in generated)
        assert frames == 12

        edited = [*SHOTS[:3], "a yellow boat", *SHOTS[4:]]
        second, generated, frames = await film(edited, "ana")
        rendered = [e.index for e in generated if e.reused_from is None]
        assert rendered == [4]
        assert frames == 2
        reused = {e.index: e.reused_from for e in generated if e.reused_from is not None}
        assert sorted(reused) == [1, 2, 3, 5, 6]
        assert all(r.job_id == first and r.index == n and r.attempt == 1 for n, r in reused.items())
        for n in reused:  # the reused shots' frames are the first film's, bit for bit
            for a, b in zip(
                store.list_keys(bucket, Keys.frames(first, n)), store.list_keys(bucket, Keys.frames(second, n)), strict=True
            ):
                assert store.get_bytes(bucket, a) == store.get_bytes(bucket, b)

        third, generated, frames = await film(edited, "ana")  # unchanged: nothing renders, still one film
        assert frames == 0
        assert all(e.reused_from is not None for e in generated)
        assert len(generated) == 6
        assert sum(e.job_id == third for e in event_log.of(JobCompleted)) == 1

        ledger = await Ledger.open(bus)
        await _completed(ledger, third)  # the ledger folds job.completed after the event log sees it
        record = await ledger.get(third)  # with its segments
        assert record is not None
        assert record.segments[4].reused_from is not None
        assert record.segments[4].reused_from.job_id == second
        report = store.get_json(bucket, Keys.report(third))
        assert [s["reused_from"]["job_id"] for s in report["segments"]] == [second] * 6
        assert all(s["shot_key"] == record.segments[s["index"]].shot_key for s in report["segments"])

        _, generated, frames = await film(edited, "ben")  # another owner's identical storyboard renders
        assert frames == 12
        assert all(e.reused_from is None for e in generated)
        await bus.close()


@pytest.mark.slow
async def test_a_new_storyboard_for_a_job_renders_only_its_changed_shot(overrides, event_log, tmp_path: Path) -> None:
    board = _board(SHOTS[:3])
    async with local_stack(tmp_path / "state", **overrides, **FAST) as stack:
        bucket = stack.settings.work_bucket
        store = ObjectStore.from_settings(stack.settings)
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as client:
            job = (await client.post("/v1/jobs", json=board)).json()["job_id"]
            await poll_job(client, job, lambda body: body["status"] == "completed", attempts=6000)
            frames = frames_rendered()
            edited = _board([SHOTS[0], "a yellow boat", SHOTS[2]])
            answer = await client.put(f"/v1/jobs/{job}/storyboard", json=edited)
            assert answer.status_code == 202, answer.text
            done = await event_log.wait_for(lambda: [e for e in event_log.of(JobCompleted) if e.version == 2], timeout=600)
            assert frames_rendered() - frames == 2  # the one changed shot
            again = [e for e in event_log.of(SegmentGenerated) if e.attempt == 2]
            assert [(e.index, e.reused_from) for e in again] == [(2, None)]
            await poll_job(client, job, lambda body: body["status"] == "completed", attempts=600)
            assert store.get_json(bucket, Keys.storyboard_version(job, 1))["segments"][1]["prompt"] == SHOTS[1]
            assert (await client.put(f"/v1/jobs/{job}/storyboard", json=edited)).json()["film_version"] == 2  # the same: nothing
            refused = await client.put(f"/v1/jobs/{job}/storyboard", json=_board(SHOTS[:2]))
            assert refused.status_code == 422
            assert "3 segments" in refused.text
        assert done[0].film_key.endswith("v2/final.mp4")
