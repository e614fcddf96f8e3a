"""Signed webhooks on a real bus to a real local HTTP receiver, verified with the standardwebhooks package."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from reelforge.stack import local_stack
from reelforge_shared.bus import Bus
from reelforge_shared.egress import Egress, EgressPolicy
from reelforge_shared.errors import InvalidInput, TransientError
from reelforge_shared.events import JobFailed, WebhookFailed, WebhookRequested
from reelforge_shared.jobs import JobRecord, Ledger
from reelforge_shared.webhooks import check_webhook_url, refuse_private, retry_schedule
from reelforge_uploader.webhooks import WebhookDeps, send
from support.egress_servers import INTERNAL, PUBLIC, Server, public_and_internal, stop
from support.webhook_receiver import WebhookReceiver


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(plans={"/flaky": [503, 503, 200], "/gone": [410]}).start()
    yield receiver
    receiver.stop()


async def test_signed_webhooks_retry_with_one_id_over_a_day(overrides, event_log, receiver, tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    config = {
        "webhook_urls": f"{receiver.url('/flaky')},{receiver.url('/gone')}",
        "webhook_secret": secret,
        "webhook_allow_private": True,
        "webhook_retry_first_s": 1.0,  # also the first ack wait (JetStream backoff): above a first send on a loaded machine
    }
    async with local_stack(tmp_path, names=["uploader"], **overrides, **config) as stack:
        bus = await Bus.connect(stack.settings)
        try:
            # The job's own webhook_url, as the gateway stores it in the job ledger.
            await (await Ledger.open(bus)).create(JobRecord(job_id="j-hooked", webhook_url=receiver.url("/own")))
            await bus.publish(JobFailed(job_id="j-hooked", stage="encoder", error="disk full"))
            got = [await receiver.next() for _ in range(5)]  # /own and /gone once, /flaky three times (503, 503, 200)
            assert [r.path for r in got].count("/own") == 1
            flaky = [r for r in got if r.path == "/flaky"]
            assert [r.status for r in flaky] == [503, 503, 200]
            # Every attempt signed (verified by the package, the receiving side), with one webhook-id throughout.
            assert len({r.headers["webhook-id"] for r in flaky}) == 1
            for r in flaky:
                body = Webhook(secret).verify(r.body, r.headers)
                assert body["type"] == "job.failed"
                assert body["data"]["job_id"] == "j-hooked"
                assert body["data"]["error"] == "disk full"
            with pytest.raises(Exception, match="signature"):
                Webhook("whsec_" + base64.b64encode(b"another secret!!").decode()).verify(flaky[0].body, flaky[0].headers)
            # 410 Gone: no retries, webhook.failed recorded.
            failed = await event_log.wait_for(lambda: event_log.of(WebhookFailed))
            assert failed[0].url == receiver.url("/gone")
            assert "410" in failed[0].error
            assert receiver.received.empty()
            # The consumer's backoff list (JetStream redelivery) spans a day.
            info = await bus.js.consumer_info(bus.stream, "uploader-webhook-requested")
            assert sum(info.config.backoff) >= 24 * 3600
            assert info.config.max_deliver == len(info.config.backoff) + 1
        finally:
            await bus.close()


async def test_internal_targets_are_refused_unless_allowed() -> None:
    internal = ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/x", "http://169.254.169.254/latest")
    for url in (*internal, "http://[64:ff9b::a9fe:a9fe]/latest", "http://[2002:a9fe:a9fe::]/latest"):
        with pytest.raises(InvalidInput, match="webhook_url.*loopback/private"):
            refuse_private(url, allow_private=False)
        with pytest.raises(InvalidInput, match="webhook_url.*loopback/private"):
            await check_webhook_url(url, allow_private=False)
        refuse_private(url, allow_private=True)
        await check_webhook_url(url, allow_private=True)
    await check_webhook_url("http://hooks.invalid/x", allow_private=True)  # local mode: not resolved now, as before
    with pytest.raises(InvalidInput, match="not an http"):
        refuse_private("ftp://example.com/x", allow_private=True)
    assert sum(retry_schedule(30, 24 * 3600)) >= 24 * 3600
    assert retry_schedule(30, 24 * 3600)[:3] == (30, 60, 120)


def test_a_webhook_body_is_the_event() -> None:
    from reelforge_shared.events import WebhookRequested
    from reelforge_uploader.webhooks import signed_request

    secret = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
    event = WebhookRequested(job_id="j-1", webhook_id="msg_1", url="https://example.com", type="job.completed", data={"a": 1})
    headers, body = signed_request(event, secret)
    assert json.loads(body)["data"] == {"a": 1}
    assert Webhook(secret).verify(body, headers)["type"] == "job.completed"


@pytest.fixture
async def targets() -> AsyncIterator[tuple[Server, Server]]:
    public, internal = await public_and_internal()
    yield public, internal
    await stop(public, internal)


def _hook(url: str) -> WebhookRequested:
    return WebhookRequested(job_id="j-1", webhook_id="msg_1", url=url, type="job.completed", data={"a": 1})


def _deps(resolver: Callable[[str, int], list[str]], **policy: Any) -> WebhookDeps:
    allow = (ipaddress.ip_network(f"{PUBLIC}/32"),)
    egress = Egress(policy=EgressPolicy(allow_networks=allow, **policy), resolver=resolver)
    return WebhookDeps(secret="whsec_" + base64.b64encode(b"0123456789abcdef").decode(), urls=[], egress=egress)


async def test_a_rebinding_webhook_target_gets_the_post_at_the_checked_address(targets: tuple[Server, Server]) -> None:
    public, internal = targets
    answers = iter([[PUBLIC], [INTERNAL], [INTERNAL]])  # TTL 0: public for the check, then loopback
    assert await send(_hook(public.url("/hook", name="hooks.example")), _deps(lambda host, port: next(answers))) == []
    assert len(public.requests) == 1
    assert internal.requests == []


async def test_a_webhook_target_behind_nat64_or_6to4_fails_at_once(targets: tuple[Server, Server]) -> None:
    for address in ("64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::ffff:127.0.0.1"):
        [failed] = await send(_hook("http://hooks.example/x"), _deps(lambda host, port, a=address: [a]))
        assert isinstance(failed, WebhookFailed), address
        assert "refused" in failed.error, address


async def test_a_webhook_redirect_to_loopback_is_not_followed(targets: tuple[Server, Server]) -> None:
    public, internal = targets

    async def to_loopback(writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 307 Redirect\r\nLocation: {internal.url('/admin')}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()

    public.answer = to_loopback
    with pytest.raises(TransientError, match="307"):
        await send(_hook(public.url("/hook")), _deps(lambda host, port: [PUBLIC]))
    assert len(public.requests) == 1
    assert internal.requests == []


async def test_a_trickling_webhook_target_is_cut_at_the_attempt_deadline(targets: tuple[Server, Server]) -> None:
    public, _ = targets
    stop = asyncio.Event()

    async def trickle(writer: asyncio.StreamWriter) -> None:  # a byte every 0.1 s: no single read waits past 0.5 s
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            if stop.is_set():
                return
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.1)

    public.answer = trickle
    with pytest.raises(TransientError, match="deadline"):
        await send(_hook(public.url("/hook")), _deps(lambda host, port: [PUBLIC], deadline_s=0.5))
    stop.set()
