"""Every poison message ends in a dead letter that fits the server, whatever the message (issue 16 point 4)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import nats
import nats.js.errors
import pytest
import structlog.testing

from reelforge_shared import flow
from reelforge_shared import runner as runner_module
from reelforge_shared.bus import Bus, bootstrap
from reelforge_shared.embedded import EmbeddedServer, start_nats
from reelforge_shared.events import SegmentRequested
from reelforge_shared.metrics import DEAD_LETTERS
from reelforge_shared.runner import PREVIEW_BYTES
from reelforge_shared.service import Service, run_service
from reelforge_shared.settings import CommonSettings

POISON = bytes(range(128, 256)) * 3200  # 400 kB, not UTF-8: decoded with "replace" it was ~1.2 MB, over max_payload


def _subject(prefix: str, event: type) -> str:
    """A subject the event's consumers read: a staged failure's carries a stage."""
    return flow.filter_subject(prefix, event).replace(".*", ".poison")


async def _noop(event: Any, deps: Any) -> list:
    raise AssertionError("a poison message never reaches a handler")


@pytest.fixture(scope="module")
def default_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A nats-server with NATS's default max_payload (1 MB; the shipped config raises it)."""
    server = start_nats(tmp_path_factory.mktemp("nats-default"), extra="max_payload: 1MB\n")
    yield server
    server.stop()


async def test_a_400_kb_non_utf8_message_on_every_consumed_subject_is_dead_lettered(
    settings: CommonSettings, default_nats: EmbeddedServer
) -> None:
    settings = settings.model_copy(update={"nats_url": default_nats.url})
    await bootstrap(settings)
    prefix = settings.subject_prefix
    services = []
    for name, service_flow in flow.FLOW.items():
        routes = flow.routes(name, {row.handler: _noop for row in service_flow.consumes})
        services.append(Service(name, settings, routes, deps=None))
    counted = {
        (s.name, r.event.__name__): DEAD_LETTERS.labels(s.name, r.event.__name__)._value.get() for s in services for r in s.routes
    }
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_service(s, stop)) for s in services]
    while not all(s.health.state == "READY" for s in services):
        for task in tasks:
            if task.done():
                task.result()
        await asyncio.sleep(0.05)

    bus = await Bus.connect(settings)
    assert bus.nc.max_payload == 1024 * 1024  # the server's default
    events = {row.event for f in flow.FLOW.values() for row in f.consumes}
    sequences = {}
    for event in events:
        subject = _subject(prefix, event)
        ack = await bus.js.publish(subject, POISON, headers={"Nats-Msg-Id": f"poison-{event.__name__}"})
        sequences[subject] = ack.seq

    expected = {(name, _subject(prefix, row.event)) for name, f in flow.FLOW.items() for row in f.consumes}
    letters: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
    sub = await bus.js.pull_subscribe(f"{prefix}.dead.>", stream=bus.stream)
    async with asyncio.timeout(60):
        while set(letters) != expected:
            try:
                msgs = await sub.fetch(50, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                letter = json.loads(msg.data)
                letters[(letter["service"], letter["subject"])] = (letter, len(msg.data))
                await msg.ack()
    stop.set()
    await asyncio.gather(*tasks)
    await bus.close()

    for (service, subject), (letter, size) in letters.items():
        assert size < 4096, (service, subject, size)
        assert letter["stream_sequence"] == sequences[subject]
        assert letter["size"] == len(POISON)
        assert base64.b64decode(letter["preview"]) == POISON[:PREVIEW_BYTES]
        assert letter["headers"]["Nats-Msg-Id"].startswith("poison-")
        assert "undecodable" in letter["error"]
    for s in services:  # counted once each: the letter landed
        for r in s.routes:
            assert DEAD_LETTERS.labels(s.name, r.event.__name__)._value.get() == counted[(s.name, r.event.__name__)] + 1


@pytest.fixture(scope="module")
def tiny_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A nats-server whose max_payload takes a 600-byte message but not its dead letter (its preview is 512 bytes)."""
    server = start_nats(tmp_path_factory.mktemp("nats-tiny"), extra="max_payload: 1000\n")
    yield server
    server.stop()


async def test_a_dead_letter_that_cannot_land_is_retried_logged_and_the_message_kept(
    settings: CommonSettings, tiny_nats: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tries and their logging are what is shown, not the back-off between them (up to 0.5+1+2+4 s by default).
    monkeypatch.setattr(runner_module, "BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(runner_module, "BACKOFF_CAP_S", 0.2)
    settings = settings.model_copy(update={"nats_url": tiny_nats.url})
    await bootstrap(settings)
    routes = flow.routes("generator", {"handle": _noop})
    service = Service("generator", settings, routes, deps=None)
    before = DEAD_LETTERS.labels("generator", "SegmentRequested")._value.get()
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(run_service(service, stop))
        async with asyncio.timeout(60):
            while service.health.state != "READY":
                await asyncio.sleep(0.05)
        bus = await Bus.connect(settings)
        ack = await bus.js.publish(flow.filter_subject(settings.subject_prefix, SegmentRequested), POISON[:600])
        async with asyncio.timeout(60):
            while not [line for line in logs if line["event"] == "dead_letter.lost"]:
                await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 30)
    failed = [line for line in logs if line["event"] == "dead_letter.publish_failed"]
    [lost, *_] = [line for line in logs if line["event"] == "dead_letter.lost"]
    assert len(failed) >= 5
    assert "MaxPayload" in failed[0]["error"]
    assert lost["sequence"] == ack.seq  # the message it could not dead-letter, named
    assert DEAD_LETTERS.labels("generator", "SegmentRequested")._value.get() == before  # nothing landed, nothing counted
    with pytest.raises(nats.js.errors.NotFoundError):
        await bus.js.get_last_msg(bus.stream, f"{settings.subject_prefix}.dead.generator")
    info = await bus.js.consumer_info(bus.stream, flow.durable_name("generator", SegmentRequested))
    await bus.close()
    assert info.num_redelivered >= 1 or info.num_ack_pending + info.num_pending >= 1  # kept: not terminated
