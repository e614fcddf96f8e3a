"""A submission or a resume written to the ledger whose publishes then fail is published by the upkeep.

Real nats-server and S3. The failing publisher is a real one: a Bus whose connection was closed, so
every publish through it raises, as it does when NATS goes away between the ledger write and the publish.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from reelforge_gateway.app import create_app
from reelforge_gateway.deps import GatewayDeps
from reelforge_gateway.links import Links
from reelforge_gateway.streams import SharedStreams
from reelforge_gateway.submit import Republisher
from reelforge_shared.bus import Bus
from reelforge_shared.events import JobSubmitted, SegmentFailed, SegmentRequested
from reelforge_shared.health import Health
from reelforge_shared.jobs import Ledger

BOARD = {"title": "t", "segments": [{"id": "a", "prompt": "walks"}, {"id": "b", "prompt": "sits"}]}
LATER = timedelta(minutes=5)  # past the grace a live writer has to publish on its own


@pytest.fixture
async def buses(settings) -> AsyncIterator[tuple[Bus, Bus]]:
    bus, broken = await Bus.connect(settings), await Bus.connect(settings)
    await broken.close()  # every publish through it raises
    yield bus, broken
    await bus.close()


def _client(settings, store, bus: Bus, ledger: Ledger) -> httpx.AsyncClient:
    deps = GatewayDeps(
        bus=bus,
        store=store,
        ledger=ledger,
        streams=SharedStreams(kv=ledger.kv),
        health=Health("gateway"),
        links=Links.from_settings(settings, public_endpoint=None, ttl_s=60),
        work_bucket=settings.work_bucket,
        delivery_bucket=settings.delivery_bucket,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(deps)), base_url="http://gateway")


async def _count(bus: Bus, event: type) -> int:
    info = await bus.js.stream_info(bus.stream, subjects_filter=bus.subject(event))
    return sum((info.state.subjects or {}).values())


async def _upkeep(ledger: Ledger, bus: Bus, store, settings) -> None:
    republish = Republisher(bus=bus, store=store, bucket=settings.work_bucket)
    await ledger.upkeep(None, now=datetime.now(UTC) + LATER, republish=republish)


async def test_a_job_without_idempotency_key_whose_first_publish_failed_is_published_by_the_upkeep(
    settings, store, buses
) -> None:
    bus, broken = buses
    ledger = await Ledger.open(bus)
    async with _client(settings, store, broken, ledger) as client:
        response = await client.post("/v1/jobs", json=BOARD)
    assert response.status_code == 202, response.text  # written to the ledger: accepted, its publishes owed
    job_id = response.json()["job_id"]
    assert (await ledger.head(job_id)).status == "queued"
    assert await _count(bus, JobSubmitted) == 0

    await ledger.upkeep(None, republish=Republisher(bus=bus, store=store, bucket=settings.work_bucket))
    assert await _count(bus, JobSubmitted) == 0  # within the grace the writer may still be publishing
    await _upkeep(ledger, bus, store, settings)
    assert await _count(bus, JobSubmitted) == 1
    assert await _count(bus, SegmentRequested) == 2
    await _upkeep(ledger, bus, store, settings)  # repaired once: nothing owed any more
    assert await _count(bus, SegmentRequested) == 2


async def test_a_resume_whose_publishes_failed_is_published_by_the_upkeep(settings, store, buses) -> None:
    bus, broken = buses
    ledger = await Ledger.open(bus)
    key = {"Idempotency-Key": "order-7"}
    async with _client(settings, store, bus, ledger) as client:
        job_id = (await client.post("/v1/jobs", json=BOARD, headers=key)).json()["job_id"]
    await ledger.apply(SegmentFailed(job_id=job_id, index=2, segment_id="b", stage="generator", error="s3 down"))
    assert (await ledger.head(job_id)).status == "failed"
    assert await _count(bus, SegmentRequested) == 2

    async with _client(settings, store, broken, ledger) as client:
        response = await client.post("/v1/jobs", json=BOARD, headers=key)  # resumes: written, its publishes fail
    assert response.status_code == 202, response.text
    record = await ledger.get(job_id)
    assert (record.status, record.resume, record.segments[2].stage) == ("running", 1, "queued")
    assert await _count(bus, SegmentRequested) == 2

    await _upkeep(ledger, bus, store, settings)
    assert await _count(bus, SegmentRequested) == 4  # both again under resume 1 (segment 1 had not started either)
    await _upkeep(ledger, bus, store, settings)
    assert await _count(bus, SegmentRequested) == 4
