"""Signed webhooks on a real bus to a real local HTTP receiver, verified with the standardwebhooks package."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from reelforge.stack import local_stack
from reelforge_shared.bus import Bus
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import JobFailed, WebhookFailed
from reelforge_shared.jobs import JobRecord, Ledger
from reelforge_shared.webhooks import refuse_private, retry_schedule
from webhook_receiver import WebhookReceiver


@pytest.fixture
async def receiver():
    receiver = WebhookReceiver(plans={"/flaky": [503, 503, 200], "/gone": [410]}).start()
    yield receiver
    receiver.stop()


async def test_signed_webhooks_retry_with_one_id_over_a_day(overrides, event_log, receiver, tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    config = {
        "webhook_urls": f"{receiver.url('/flaky')},{receiver.url('/gone')}",
        "webhook_secret": secret,
        "webhook_allow_private": True,
        "webhook_retry_first_s": 0.3,
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
                assert body["type"] == "job.failed" and body["data"]["job_id"] == "j-hooked"
                assert body["data"]["error"] == "disk full"
            with pytest.raises(Exception, match="signature"):
                Webhook("whsec_" + base64.b64encode(b"another secret!!").decode()).verify(flaky[0].body, flaky[0].headers)
            # 410 Gone: no retries, webhook.failed recorded.
            failed = await event_log.wait_for(lambda: event_log.of(WebhookFailed))
            assert failed[0].url == receiver.url("/gone") and "410" in failed[0].error
            assert receiver.received.empty()
            # The consumer's backoff list (JetStream redelivery) spans a day.
            info = await bus.js.consumer_info(bus.stream, "uploader-webhook-requested")
            assert sum(info.config.backoff) >= 24 * 3600 and info.config.max_deliver == len(info.config.backoff) + 1
        finally:
            await bus.close()


def test_internal_targets_are_refused_unless_allowed() -> None:
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/x", "http://169.254.169.254/latest"):
        with pytest.raises(InvalidInput, match="webhook_url.*loopback/private"):
            refuse_private(url, allow_private=False)
        refuse_private(url, allow_private=True)
    with pytest.raises(InvalidInput, match="not an http"):
        refuse_private("ftp://example.com/x", allow_private=True)
    assert sum(retry_schedule(30, 24 * 3600)) >= 24 * 3600 and retry_schedule(30, 24 * 3600)[:3] == (30, 60, 120)


def test_a_webhook_body_is_the_event() -> None:
    from reelforge_shared.events import WebhookRequested
    from reelforge_uploader.webhooks import signed_request

    secret = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
    event = WebhookRequested(job_id="j-1", webhook_id="msg_1", url="https://example.com", type="job.completed", data={"a": 1})
    headers, body = signed_request(event, secret)
    assert json.loads(body)["data"] == {"a": 1} and Webhook(secret).verify(body, headers)["type"] == "job.completed"
