"""Caps that hold: the per-owner cap counts /api/video/* submissions too, and a token has a bounded number of event streams."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from reelforge.stack import local_stack
from reelforge_shared.embedded import start_nats

SETTINGS = {
    "api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret",
    "max_jobs_in_flight": 1,
    "max_event_streams": 2,
    "sync_timeout_s": 0,
    "default_text_to_video_model": "reelforge/tiny-zeroscope",
}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
BOB = {"Authorization": "Bearer tok-bob-secret"}
BOARD = {"segments": [{"id": "a", "prompt": "walks"}]}


async def test_video_submissions_count_against_the_owners_cap_and_streams_are_bounded(overrides, tmp_path: Path) -> None:
    async with local_stack(tmp_path, names=["gateway"], **overrides, **SETTINGS) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=ALICE) as client:
            videos = [{"prompt": f"a cat, take {n}", "duration": 1, "fps": 3, "width": 64, "height": 64} for n in range(6)]
            answers = await asyncio.gather(*(client.post("/api/video/text-to-video", json=v) for v in videos))
            assert sorted(a.status_code for a in answers) == [202] + [429] * 5, [a.text for a in answers]
            assert {a.json()["error"] for a in answers if a.status_code == 429} == {"queue_full"}
            assert (await client.post("/v1/jobs", json=BOARD)).status_code == 429  # one cap for every path
            job_id = next(a.json()["job_id"] for a in answers if a.status_code == 202)

            async with client.stream("GET", f"/v1/jobs/{job_id}/events") as first:
                assert first.status_code == 200
                async with client.stream("GET", f"/v1/jobs/{job_id}/events") as second:
                    assert second.status_code == 200
                    third = await client.get(f"/v1/jobs/{job_id}/events")
                    assert third.status_code == 429, third.text
                    assert third.json()["error"] == "too_many_streams", third.text
                    assert "REELFORGE_MAX_EVENT_STREAMS" in third.json()["message"]
            # Both closed: their places are back (the gateway notices the client left at its next write).
            await client.post(f"/v1/jobs/{job_id}/cancel")
            async with client.stream("GET", f"/v1/jobs/{job_id}/events") as again:
                assert again.status_code == 200
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=BOB) as bob:
                assert (await bob.post("/v1/jobs", json=BOARD)).status_code == 202  # bob's cap is his own


async def test_a_job_too_large_for_the_bus_is_refused_and_gives_its_cap_place_back(overrides, tmp_path: Path) -> None:
    small = start_nats(tmp_path / "nats-8kb", extra="max_payload: 8KB\n")  # one segment's spec below will not fit
    try:
        config = overrides | SETTINGS | {"nats_url": small.url}
        cast = {f"c{n}": {"description": f"person {n}, " + "tall " * 390, "seed": n} for n in range(5)}
        big = {"characters": cast, "segments": [{"id": "a", "prompt": "they walk", "characters": list(cast)}]}
        async with local_stack(tmp_path / "stack", names=["gateway"], **config) as stack:
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=ALICE) as client:
                refused = await client.post("/v1/jobs", json=big)
                assert refused.status_code == 413, refused.text[:600]
                assert refused.json()["error"] == "job_too_large"
                accepted = await client.post("/v1/jobs", json=BOARD)  # cap 1: the refused job holds no place
                assert accepted.status_code == 202, accepted.text
    finally:
        small.stop()
