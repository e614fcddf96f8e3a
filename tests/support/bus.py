"""A service of the test's own handlers on the real bus: start it, stop it, read its dead letters."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats

from reelforge_shared.bus import Bus
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, run_service
from reelforge_shared.settings import CommonSettings


async def serve(settings: CommonSettings, routes: list[Route]) -> tuple[asyncio.Event, asyncio.Task]:
    """Run a service named "testsvc" with these routes until the returned event is set; returns once it is READY."""
    service = Service("testsvc", settings, routes, deps=None)
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(service, stop))
    while service.health.state != "READY":
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return stop, task


async def stop_service(stop: asyncio.Event, task: asyncio.Task) -> None:
    stop.set()
    await asyncio.wait_for(task, 10)


async def dead_letters(settings: CommonSettings) -> list[dict[str, Any]]:
    """The dead letters under the test's prefix (up to ten), decoded."""
    bus = await Bus.connect(settings)
    sub = await bus.js.pull_subscribe(f"{settings.subject_prefix}.dead.>", stream=bus.stream)
    try:
        msgs = await sub.fetch(10, timeout=2)
    except nats.errors.TimeoutError:
        msgs = []
    await bus.close()
    return [json.loads(m.data) for m in msgs]
