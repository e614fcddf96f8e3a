"""Jobs API v1 through the real services: cancel stops the generator between batches; re-render makes a new film version."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from reelforge.stack import local_stack
from reelforge_shared.bus import Bus
from reelforge_shared.events import JobCompleted, SegmentEncoded, SegmentGenerated, SegmentRequested
from reelforge_shared.storage import Keys, ObjectStore
from support.polling import poll_job

FAST = {"steps": 2, "batch_size": 8}
BOARD = {
    "output": {"width": 160, "height": 90},
    "segments": [{"id": "a", "prompt": "walks", "frames": 3, "fps": 3}, {"id": "b", "prompt": "sits", "frames": 3, "fps": 3}],
}


async def _acked(settings, durable: str, count: int) -> None:
    bus = await Bus.connect(settings)
    try:
        for _ in range(1200):
            info = await bus.js.consumer_info(bus.stream, durable)
            if info.ack_floor.consumer_seq >= count and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{durable} never acked {count}: {info}")
    finally:
        await bus.close()


async def test_cancel_stops_the_generator_at_its_next_batch_and_keeps_what_is_stored(overrides, event_log, tmp_path) -> None:
    async with local_stack(tmp_path, names=["gateway", "generator"], **overrides, steps=2, batch_size=1) as stack:
        settings, store = stack.settings, ObjectStore.from_settings(stack.settings)
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            board = {"output": {"width": 160, "height": 90}, "segments": [{"id": "long", "prompt": "p", "frames": 200}]}
            job = (await client.post("/v1/jobs", json=board)).json()["job_id"]
            for _ in range(1200):  # wait on the object: the first frames are stored
                if store.list_keys(settings.work_bucket, Keys.frames(job, 1)):
                    break
                await asyncio.sleep(0.05)
            cancelled = await client.post(f"/v1/jobs/{job}/cancel")
            assert cancelled.status_code == 200
            assert cancelled.json()["status"] == "cancelled"
            await _acked(settings, "generator-segment-requested", 1)  # the generator let go of the segment
            stored = store.list_keys(settings.work_bucket, Keys.frames(job, 1))
            assert 0 < len(stored) < 200
            assert not event_log.of(SegmentGenerated)
            assert (await client.get(f"/v1/jobs/{job}")).json()["status"] == "cancelled"
            rerender = await client.post(f"/v1/jobs/{job}/segments/1/rerender", json={"seed": 1})
            assert rerender.status_code == 409
            assert rerender.json()["error"] == "job_not_finished"


async def test_rerender_renders_one_segment_again_and_the_film_gets_a_new_version(overrides, event_log, tmp_path: Path) -> None:
    async with local_stack(tmp_path, **overrides, **FAST) as stack:
        settings, store = stack.settings, ObjectStore.from_settings(stack.settings)
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            job = (await client.post("/v1/jobs", json=BOARD)).json()["job_id"]
            await event_log.wait_for(lambda: event_log.of(JobCompleted), timeout=300)
            done = await poll_job(client, job, lambda j: j["status"] == "completed", attempts=600)
            film = await client.get(f"/v1/jobs/{job}/film")
            assert film.status_code == 307
            assert b"ftyp" in httpx.get(film.headers["location"]).content[:16]
            response = await client.post(f"/v1/jobs/{job}/segments/2/rerender", json={"seed": 4242, "prompt": "stands up"})
            assert response.status_code == 202
            assert response.json()["segments"]["2"]["attempt"] == 2
            busy = await client.post(f"/v1/jobs/{job}/segments/1/rerender", json={"seed": 1})
            assert busy.status_code == 409
            assert busy.json()["error"] == "job_not_finished"
            await event_log.wait_for(lambda: len(event_log.of(JobCompleted)) == 2, timeout=300)
            again = await poll_job(client, job, lambda j: j["status"] == "completed" and j["film_version"] == 2, attempts=600)
            old = await client.get(f"/v1/jobs/{job}/film", params={"version": 1})
            assert old.status_code == 307
            assert httpx.get(old.headers["location"]).status_code == 200
    generated = sorted((e.index, e.attempt) for e in event_log.of(SegmentGenerated))
    assert generated == [(1, 1), (2, 1), (2, 2)]  # segment 1 was not rendered again
    assert sorted((e.index, e.attempt) for e in event_log.of(SegmentEncoded)) == [(1, 1), (2, 1), (2, 2)]
    redo = next(e for e in event_log.of(SegmentRequested) if e.attempt == 2)
    assert redo.spec.seed == 4242
    assert "stands up" in redo.spec.prompt
    assert [e.version for e in event_log.of(JobCompleted)] == [1, 2]
    films = again["films"]
    assert set(films) == {"1", "2"}
    assert films["1"] == done["film_key"]
    assert films["2"] != films["1"]
    assert all(store.exists(settings.delivery_bucket, key) for key in films.values())  # the earlier version stays
