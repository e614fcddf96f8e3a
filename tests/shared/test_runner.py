"""The shared runner against a real nats-server: acks, retries, dead letters, de-duplication.

Tested once here for every service; the handlers are plain functions of this test.
"""

from __future__ import annotations

import asyncio

import pytest

from reelforge_shared.bus import Bus
from reelforge_shared.errors import InvalidInput, TransientError
from reelforge_shared.events import FilmEncoded, FilmRequested, JobFailed, SegmentFailed, SegmentRequested
from reelforge_shared.runner import Route
from support.bus import dead_letters, serve, stop_service
from support.factories import segment_request


async def test_handler_results_are_published_and_the_message_acked(settings, event_log) -> None:
    def handle(event: SegmentRequested, deps: None) -> list:
        return [FilmRequested(job_id=event.job_id, segment_count=event.index)]

    stop, task = await serve(settings, [Route(SegmentRequested, handle)])
    bus = await Bus.connect(settings)
    await bus.publish(segment_request())
    await event_log.wait_for(lambda: event_log.of(FilmRequested), timeout=20)
    for _ in range(200):  # the ack follows the publish: read the consumer until the server has it
        info = await bus.js.consumer_info(bus.stream, "testsvc-segment-requested")
        if info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.05)
    await stop_service(stop, task)
    await bus.close()
    assert info.num_ack_pending == 0
    assert info.num_pending == 0
    assert info.delivered.consumer_seq == 1


async def test_transient_error_is_retried_until_it_succeeds(settings, event_log) -> None:
    calls: list[int] = []

    def handle(event: SegmentRequested, deps: None) -> list:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("S3 briefly away")
        return [FilmRequested(job_id=event.job_id, segment_count=1)]

    stop, task = await serve(settings, [Route(SegmentRequested, handle)])
    bus = await Bus.connect(settings)
    await bus.publish(segment_request())
    await event_log.wait_for(lambda: event_log.of(FilmRequested), timeout=20)
    await stop_service(stop, task)
    await bus.close()
    assert len(calls) == 3
    assert not event_log.of(SegmentFailed)


async def test_permanent_error_dead_letters_at_once_and_publishes_the_failure(settings, event_log) -> None:
    calls: list[int] = []

    def handle(event: SegmentRequested, deps: None) -> list:
        calls.append(1)
        raise InvalidInput("spec.width must be divisible by 8, got 1001")

    stop, task = await serve(settings, [Route(SegmentRequested, handle)])
    bus = await Bus.connect(settings)
    await bus.publish(segment_request(7))
    failed = await event_log.wait_for(lambda: event_log.of(SegmentFailed), timeout=20)
    await stop_service(stop, task)
    await bus.close()
    assert len(calls) == 1
    assert failed[0].index == 7
    assert failed[0].stage == "testsvc"
    assert "divisible by 8" in failed[0].error
    letters = await dead_letters(settings)
    assert len(letters) == 1
    assert letters[0]["deliveries"] == 1
    assert "divisible by 8" in letters[0]["error"]


async def test_unknown_errors_dead_letter_after_the_last_delivery(settings, event_log) -> None:
    settings = settings.model_copy(update={"max_deliver": 3})
    calls: list[int] = []

    def handle(event: FilmRequested, deps: None) -> list:
        calls.append(1)
        raise RuntimeError("bug")

    stop, task = await serve(settings, [Route(FilmRequested, handle)])
    bus = await Bus.connect(settings)
    await bus.publish(FilmRequested(job_id="j-x", segment_count=1))
    failed = await event_log.wait_for(lambda: event_log.of(JobFailed), timeout=30)
    await stop_service(stop, task)
    await bus.close()
    assert len(calls) == 3
    assert "RuntimeError: bug" in failed[0].error
    assert [letter["deliveries"] for letter in await dead_letters(settings)] == [3]


async def test_undecodable_message_is_dead_lettered_not_retried(settings) -> None:
    calls: list[int] = []
    stop, task = await serve(settings, [Route(SegmentRequested, lambda e, d: calls.append(1) or [])])
    bus = await Bus.connect(settings)
    await bus.js.publish(bus.subject(SegmentRequested), b'{"job_id": "j-1", "index": 0}')
    letters: list = []
    for _ in range(50):
        if letters := await dead_letters(settings):
            break
    await stop_service(stop, task)
    await bus.close()
    assert not calls
    assert "undecodable SegmentRequested" in letters[0]["error"]
    assert "index" in letters[0]["error"]


async def test_long_work_reports_in_progress_and_is_not_redelivered(settings, event_log) -> None:
    settings = settings.model_copy(update={"ack_wait_s": 1.0})
    calls: list[int] = []

    def handle(event: SegmentRequested, deps: None) -> list:
        calls.append(1)
        import time

        time.sleep(3.5)  # the work itself: three ack-waits long
        return [FilmRequested(job_id=event.job_id, segment_count=1)]

    stop, task = await serve(settings, [Route(SegmentRequested, handle)])
    bus = await Bus.connect(settings)
    await bus.publish(segment_request())
    await event_log.wait_for(lambda: event_log.of(FilmRequested), timeout=20)
    await stop_service(stop, task)
    await bus.close()
    assert len(calls) == 1


async def test_a_repeated_publish_is_stored_once(settings) -> None:
    bus = await Bus.connect(settings)
    event = FilmEncoded(job_id="j-1", film_key="k", duration_s=1, frame_count=3, fps=3, width=2, height=2)
    again = event.model_copy(update={"event_id": "another"})  # a retry creates a new event id, same logical event
    await bus.publish(event)
    await bus.publish(again)
    info = await bus.js.stream_info(bus.stream)
    await bus.close()
    assert info.state.messages == 1


@pytest.mark.parametrize("n", [1, 2])
def test_dedup_ids_name_the_job_segment_and_attempt(n: int) -> None:
    assert segment_request(n).dedup_id() == f"segment.requested:j-test:{n:03d}:1"


def test_health_endpoint_follows_readiness_and_metrics_are_served() -> None:
    import httpx

    from reelforge_shared.embedded import free_port
    from reelforge_shared.health import Health, serve_health

    health, port = Health("generator"), free_port()
    server = serve_health(port, [health], host="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz").status_code == 503  # STARTING: the model is still loading
        health.ready()
        health.busy()
        body = httpx.get(f"{url}/healthz").json()
        assert body["ok"]
        assert body["services"][0]["state"] == "BUSY"
        health.idle()
        health.setup_failed("CUDA out of memory")
        assert httpx.get(f"{url}/healthz").status_code == 503
        assert "reelforge_events_handled_total" in httpx.get(f"{url}/metrics").text
    finally:
        server.shutdown()


async def test_a_prefetched_batch_is_handled_grouped_by_key_and_nothing_is_redelivered(settings, event_log) -> None:
    settings = settings.model_copy(update={"ack_wait_s": 1.0})
    bus = await Bus.connect(settings)
    for index, model in enumerate(["model-a", "model-b", "model-a", "model-b"], start=1):
        await bus.publish(segment_request(index).model_copy(update={"model": model}))
    seen: list[tuple[int, str]] = []

    def handle(event: SegmentRequested, deps: None) -> list:
        import time

        seen.append((event.index, event.model))
        time.sleep(0.6)  # four of these outlast the ack wait: the waiting ones must stay alive
        return [FilmRequested(job_id=f"j-{event.index}", segment_count=1)]

    stop, task = await serve(settings, [Route(SegmentRequested, handle, prefetch=4, group_by=lambda e: e.model)])
    await event_log.wait_for(lambda: len(event_log.of(FilmRequested)) == 4, timeout=30)
    await stop_service(stop, task)
    await bus.close()
    assert seen == [(1, "model-a"), (3, "model-a"), (2, "model-b"), (4, "model-b")]
