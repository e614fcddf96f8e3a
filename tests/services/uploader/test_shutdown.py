"""The uploader lets go of what it holds when it stops (real nats-server and S3)."""

from __future__ import annotations

import asyncio

from reelforge_shared.service import run_service
from reelforge_uploader.config import UploaderSettings
from reelforge_uploader.service import build


async def test_the_webhook_client_is_closed_when_the_uploader_stops(overrides) -> None:
    service = build(UploaderSettings(**overrides))
    client = service.deps.webhooks.egress._client  # opened as the first webhook would
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(service, stop))
    while service.health.state != "READY":
        assert not task.done(), task
        await asyncio.sleep(0.02)
    assert not client.is_closed
    stop.set()
    await asyncio.wait_for(task, 10)
    assert client.is_closed
