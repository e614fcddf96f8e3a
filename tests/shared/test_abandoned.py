"""Abandoned work stops (issue 16 point 6): a subprocess past the limit is killed; a wedged thread retires its worker,
and the redelivery runs on another worker, never beside the stuck one."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from reelforge_shared.bus import Bus
from reelforge_shared.events import RenderSpec, SegmentGenerated, SegmentRequested
from reelforge_shared.runner import Route, WorkerRetired
from reelforge_shared.service import Service, run_service
from reelforge_shared.settings import CommonSettings
from reelforge_shared.work import run_subprocess


def _request() -> SegmentRequested:
    spec = RenderSpec(prompt="p", seed=1, frames=2, fps=3, width=64, height=64)
    return SegmentRequested(job_id="j-stuck", index=1, segment_id="s1", spec=spec)


def _done(event: SegmentRequested) -> list:
    model = {"name": "m", "pipeline": "p", "random_weights": True}
    return [SegmentGenerated.follow(event, frames_prefix="x/", frame_count=1, fps=1, width=8, height=8, model=model)]


async def _until(condition: Any, what: str, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_subprocess_past_the_time_limit_is_killed_and_the_worker_stays_ready(
    settings: CommonSettings, event_log, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"abandon_grace_s": 30.0})
    pidfile, calls = tmp_path / "pid", []

    def handle(event: SegmentRequested, deps: None) -> list:
        calls.append(event)
        if len(calls) == 1:  # a child that would run for a minute
            run_subprocess(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], timeout=120)
        return _done(event)

    service = Service("killer", settings, [Route(SegmentRequested, handle, timeout=lambda e: 1.0)], deps=None)
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(service, stop))
    await _until(lambda: service.health.state == "READY", "ready")
    bus = await Bus.connect(settings)
    await bus.publish(_request())
    await event_log.wait_for(lambda: event_log.of(SegmentGenerated), timeout=60)
    await bus.close()
    pid = int(pidfile.read_text())
    assert not _alive(pid)  # killed when the call was abandoned, long before its 60 s
    assert len(calls) == 2  # redelivered and done
    await _until(lambda: service.health.state == "READY", "idle again")  # never RETIRING: its thread returned
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_a_wedged_handler_retires_its_worker_and_the_redelivery_runs_on_another(
    settings: CommonSettings, event_log
) -> None:
    settings = settings.model_copy(update={"abandon_grace_s": 0.5, "drain_s": 1.0})
    release = threading.Event()
    calls: list[tuple[str, int]] = []

    def handler(worker: str) -> Any:
        def handle(event: SegmentRequested, deps: None) -> list:
            calls.append((worker, threading.get_ident()))
            if len(calls) == 1:
                release.wait()  # wedged: no subprocess to kill, nothing to interrupt
            return _done(event)

        return handle

    def worker(name: str) -> Service:  # two replicas of one service: the same durable consumer
        return Service("wedge", settings, [Route(SegmentRequested, handler(name), timeout=lambda e: 1.0)], deps=None)

    first, second = worker("first"), worker("second")
    first_stop, second_stop = asyncio.Event(), asyncio.Event()
    first_task = asyncio.create_task(run_service(first, first_stop))
    await _until(lambda: first.health.state == "READY", "first ready")
    bus = await Bus.connect(settings)
    await bus.publish(_request())
    await _until(lambda: len(calls) == 1, "the first worker took the event")
    second_task = asyncio.create_task(run_service(second, second_stop))

    await event_log.wait_for(lambda: event_log.of(SegmentGenerated), timeout=60)
    await bus.close()
    assert [who for who, _ in calls] == ["first", "second"]
    assert first.health.state == "RETIRING"
    assert not first.health.ok
    retired = await asyncio.wait_for(asyncio.gather(first_task, return_exceptions=True), 30)
    assert isinstance(retired[0], WorkerRetired)
    assert "wedged" in str(retired[0])
    assert second.health.ok
    release.set()
    second_stop.set()
    await asyncio.wait_for(second_task, 30)
