"""Open event streams per token across gateway replicas: leases in the job store's KV, on a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_gateway.errors import ApiError
from reelforge_gateway.streams import SharedStreams, StreamLease
from reelforge_shared.bus import Bus
from reelforge_shared.jobs import Ledger
from reelforge_shared.settings import CommonSettings
from support.gateway_process import gateway_process

TOKENS = {"api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret"}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
BOB = {"Authorization": "Bearer tok-bob-secret"}
BOARD = {"segments": [{"id": "a", "prompt": "walks"}]}


async def test_concurrent_opens_on_two_connections_hold_exactly_the_limit(settings: CommonSettings) -> None:
    buses = [await Bus.connect(settings) for _ in range(2)]
    try:
        streams = [SharedStreams(kv=(await Ledger.open(bus)).kv, limit=3, lease_s=30) for bus in buses]
        answers = await asyncio.gather(*(streams[i % 2].open("alice") for i in range(12)), return_exceptions=True)
        held = [a for a in answers if isinstance(a, StreamLease)]
        refused = [a for a in answers if isinstance(a, ApiError)]
        assert (len(held), len(refused)) == (3, 9), answers
        assert {(e.status, e.error, e.details["limit"]) for e in refused} == {(429, "too_many_streams", 3)}
        assert "REELFORGE_MAX_EVENT_STREAMS" in refused[0].message
        assert isinstance(await streams[0].open("bob"), StreamLease)  # another token, its own places
        await held[0].close()
        assert isinstance(await streams[1].open("alice"), StreamLease)  # a closed stream's place is free on either
        with pytest.raises(ApiError):
            await streams[0].open("alice")
    finally:
        for bus in buses:
            await bus.close()


async def test_a_lease_not_refreshed_expires_and_a_refreshed_one_stays(settings: CommonSettings) -> None:
    bus = await Bus.connect(settings)
    try:
        now = [1000.0]
        streams = SharedStreams(kv=(await Ledger.open(bus)).kv, limit=1, lease_s=10, clock=lambda: now[0])
        lease = await streams.open("alice")
        now[0] += 6
        assert await lease.refresh()  # held until 1016 now
        now[0] += 6
        with pytest.raises(ApiError):
            await streams.open("alice")
        now[0] += 5  # past 1016: its replica stopped refreshing it (killed), the place is free
        again = await streams.open("alice")
        assert not await lease.refresh()  # the lost lease says so: its stream ends
        assert await again.refresh()
    finally:
        await bus.close()


async def _job(client: httpx.AsyncClient) -> str:
    accepted = await client.post("/v1/jobs", json=BOARD, headers=ALICE)
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["job_id"])


async def _opens(client: httpx.AsyncClient, job_id: str, within_s: float) -> None:
    """Wait until an event stream of alice on ``client`` is accepted (and closed again); fail after ``within_s``."""
    began = time.monotonic()
    while time.monotonic() - began < within_s:
        async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=ALICE) as answer:
            if answer.status_code == 200:
                return
            assert answer.status_code == 429
        await asyncio.sleep(0.2)
    raise AssertionError(f"no event stream accepted within {within_s} s")


async def _leases(settings: CommonSettings, name: str) -> dict[str, float]:
    """``name``'s live stream leases in the job store: stream id -> when it runs out (epoch seconds)."""
    bus = await Bus.connect(settings)
    try:
        return await SharedStreams(kv=(await Ledger.open(bus)).kv).change(name, lambda _leases, _now: None)
    finally:
        await bus.close()


async def test_two_gateway_replicas_share_one_stream_limit_per_token(overrides: dict[str, Any], tmp_path: Path) -> None:
    """Streams opened on either replica count against one limit; a closed one frees its place at once (not by its lease)."""
    limits = {**TOKENS, "max_event_streams": 2, "event_stream_lease_s": 60}
    async with (
        local_stack(tmp_path / "a", names=["gateway"], **overrides, **limits) as first,
        local_stack(tmp_path / "b", names=["gateway"], **overrides, **limits) as second,
        httpx.AsyncClient(base_url=first.gateway_url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.gateway_url, timeout=30) as b,
    ):
        job_id = await _job(a)
        async with a.stream("GET", f"/v1/jobs/{job_id}/events", headers=ALICE) as on_a:
            assert on_a.status_code == 200
            async with b.stream("GET", f"/v1/jobs/{job_id}/events", headers=ALICE) as on_b:
                assert on_b.status_code == 200
                for client in (a, b):  # each replica holds one of alice's streams, yet both refuse a third
                    refused = await client.get(f"/v1/jobs/{job_id}/events", headers=ALICE)
                    assert refused.status_code == 429, refused.text
                    assert refused.json()["error"] == "too_many_streams"
                    assert refused.json()["details"]["limit"] == 2
                    assert "REELFORGE_MAX_EVENT_STREAMS" in refused.json()["message"]
            await _opens(a, job_id, within_s=30)  # closed on b: its place is back long before the 60 s lease
        bob_job = (await b.post("/v1/jobs", json=BOARD, headers=BOB)).json()["job_id"]
        async with b.stream("GET", f"/v1/jobs/{bob_job}/events", headers=BOB) as bobs:
            assert bobs.status_code == 200


async def test_a_killed_replica_gives_its_streams_places_back_after_the_lease(
    overrides: dict[str, Any], s3_keys: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """A gateway process killed with its streams open cannot close them: their leases run out, then the places are free."""
    lease_s = 4.0
    limits = {**TOKENS, "max_event_streams": 2, "event_stream_lease_s": lease_s}
    async with (
        local_stack(tmp_path / "b", names=["gateway"], **overrides, **limits) as survivor,
        httpx.AsyncClient(base_url=survivor.gateway_url, timeout=30) as b,
    ):
        job_id = await _job(b)
        with gateway_process(overrides | s3_keys["gateway"], tmp_path / "killed.log", **limits) as killed:
            async with contextlib.AsyncExitStack() as held, httpx.AsyncClient(base_url=killed.url, timeout=30) as a:
                for _ in range(2):
                    answer = await held.enter_async_context(a.stream("GET", f"/v1/jobs/{job_id}/events", headers=ALICE))
                    assert answer.status_code == 200
                assert (await b.get(f"/v1/jobs/{job_id}/events", headers=ALICE)).status_code == 429
                killed.process.kill()  # SIGKILL: its streams are never closed
                killed.process.wait()
                leases = await _leases(survivor.settings, "alice")
                assert len(leases) == 2
                assert (await b.get(f"/v1/jobs/{job_id}/events", headers=ALICE)).status_code == 429  # still leased
                await _opens(b, job_id, within_s=lease_s + 60)
                # Freed by a lease running out, not at once: compared with the lease itself, not with a time since the
                # kill (a loaded machine can leave more than lease_s / 2 between the streams' last refresh and the kill).
                assert time.time() >= min(leases.values())
