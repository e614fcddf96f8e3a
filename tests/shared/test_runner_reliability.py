"""The runner's reliability rules on a real nats-server: outages waited out, time limits, drain, observers.

The handlers are plain functions of this test; what they raise stands for what S3 or a stuck
model would do (the fault suite in tests/faults/test_faults.py does it with the real servers).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from reelforge_shared import runner as runner_module
from reelforge_shared.bus import Bus
from reelforge_shared.errors import DependencyDown
from reelforge_shared.events import FilmRequested, SegmentFailed, SegmentRequested
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, run_service
from reelforge_shared.work import current
from support.bus import dead_letters, serve, stop_service
from support.factories import segment_request


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(runner_module, "BACKOFF_CAP_S", 0.2)


async def test_an_outage_is_waited_out_without_spending_deliveries(settings, event_log) -> None:
    settings = settings.model_copy(update={"max_deliver": 2})
    seen: list[tuple[int, bool]] = []
    service = Service("testsvc", settings, [], deps=None)

    def handle(event: SegmentRequested, deps: None) -> list:
        seen.append((len(seen), "s3" in service.health.down))
        if len(seen) <= 5:  # five failures: more than max_deliver would allow if they were counted
            raise DependencyDown("s3", "put 'jobs/x' failed: Connection refused")
        return [FilmRequested.follow(event, segment_count=1)]

    service.routes.append(Route(SegmentRequested, handle))
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(service, stop))
    bus = await Bus.connect(settings)
    await bus.publish(segment_request())
    await event_log.wait_for(lambda: event_log.of(FilmRequested), timeout=20)
    info = await bus.js.consumer_info(bus.stream, "testsvc-segment-requested")
    await stop_service(stop, task)
    await bus.close()
    assert len(seen) == 6, "the second try saw s3 reported down on /healthz"
    assert seen[1][1], "the second try saw s3 reported down on /healthz"
    assert info.delivered.stream_seq == 1, "one delivery, not spent"
    assert info.num_redelivered == 0, "one delivery, not spent"
    assert not service.health.down
    assert not event_log.of(SegmentFailed)


async def test_an_outage_past_the_tolerance_fails_naming_it(settings, event_log) -> None:
    settings = settings.model_copy(update={"outage_tolerance_s": 0.5})

    def handle(event: SegmentRequested, deps: None) -> list:
        raise DependencyDown("s3", "get 'jobs/x' failed: Connection refused")

    stop, task = await serve(settings, [Route(SegmentRequested, handle)])
    bus = await Bus.connect(settings)
    await bus.publish(segment_request())
    failed = await event_log.wait_for(lambda: event_log.of(SegmentFailed), timeout=20)
    await stop_service(stop, task)
    await bus.close()
    assert "s3 unreachable for" in failed[0].error
    assert "REELFORGE_OUTAGE_TOLERANCE_S=0.5" in failed[0].error


async def test_a_hanging_handler_is_abandoned_and_its_event_redelivered(settings, event_log) -> None:
    """Its thread returns once abandoned, so the worker stays; a thread that does not: tests/shared/test_abandoned.py."""
    calls: list[int] = []

    def handle(event: SegmentRequested, deps: None) -> list:
        calls.append(event.index)
        if len(calls) == 1:  # stuck until the runner abandons it, as a killed ffmpeg call is
            work = current()
            assert work is not None
            assert work.abandoned.wait(60)
        return [FilmRequested.follow(event, segment_count=len(calls))]

    route = Route(SegmentRequested, handle, timeout=lambda e: 1.0)
    stop, task = await serve(settings, [route])
    bus = await Bus.connect(settings)
    await bus.publish(segment_request())
    done = await event_log.wait_for(lambda: event_log.of(FilmRequested), timeout=20)
    await bus.publish(segment_request(2))  # the worker is healthy and takes the next message
    await event_log.wait_for(lambda: len(event_log.of(FilmRequested)) == 2, timeout=20)
    await stop_service(stop, task)
    await bus.close()
    assert calls == [1, 1, 2]
    assert done[0].segment_count == 2


async def test_sigterm_drain_hands_back_unfinished_work_at_once(settings, event_log) -> None:
    settings = settings.model_copy(update={"drain_s": 0.5, "retry_delay_s": 30})
    started, release = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    def stuck(event: SegmentRequested, deps: None) -> list:
        loop.call_soon_threadsafe(started.set)
        release.wait(60)
        return []

    stop, task = await serve(settings, [Route(SegmentRequested, stuck)])
    bus = await Bus.connect(settings)
    await bus.publish(segment_request())
    await asyncio.wait_for(started.wait(), 20)
    stop.set()
    await asyncio.wait_for(task, 30)  # the worker exits after drain_s: the work (stuck 60 s) is not waited for
    release.set()
    # The next worker gets it at once (a nak without delay), not after ack_wait or a retry delay.
    stop2, task2 = await serve(settings, [Route(SegmentRequested, lambda e, d: [FilmRequested.follow(e, segment_count=9)])])
    await event_log.wait_for(lambda: event_log.of(FilmRequested), timeout=5)
    await stop_service(stop2, task2)
    await bus.close()


async def test_an_observer_never_fails_the_segment(settings, event_log) -> None:
    settings = settings.model_copy(update={"max_deliver": 2})
    calls: list[int] = []

    def tracker(event: SegmentRequested, deps: None) -> list:
        calls.append(1)
        raise RuntimeError("state bucket unavailable")

    stop, task = await serve(settings, [Route(SegmentRequested, tracker, observer=True)])
    bus = await Bus.connect(settings)
    await bus.publish(segment_request())
    letters: list = []
    for _ in range(100):
        if letters := await dead_letters(settings):
            break
    await stop_service(stop, task)
    await bus.close()
    assert len(calls) == 2
    assert letters[0]["deliveries"] == 2
    assert "state bucket unavailable" in letters[0]["error"]
    assert not event_log.of(SegmentFailed)
