"""Signed webhooks (Standard Webhooks): fan out terminal job events to their targets, then send each.

Two routes, so one slow or dead target never holds back another:

- :func:`fan_out` (an observer of ``job.completed``, ``job.failed``, ``job.cancelled`` and, when
  ``REELFORGE_WEBHOOK_SEGMENT_EVENTS`` is on, ``segment.delivered``) publishes one
  ``webhook.requested`` per target: every ``REELFORGE_WEBHOOK_URLS`` entry and the job's own
  ``webhook_url`` (from the job ledger). Its webhook id is a function of event and target.
- :func:`send` POSTs ``{"type", "timestamp", "data"}`` with ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature`` (HMAC-SHA256 by the ``standardwebhooks`` package, key
  ``REELFORGE_WEBHOOK_SECRET``). A 2xx answer acks; anything else is retried by JetStream after the
  route's backoff delays (doubling from ``REELFORGE_WEBHOOK_RETRY_FIRST_S`` until they span
  ``REELFORGE_WEBHOOK_RETRY_SPAN_S``, a day by default); 410 Gone and a refused target stop at once
  and publish ``webhook.failed``, and so does the last retry (the message is dead-lettered on
  ``{prefix}.dead.uploader`` too). The message is the same on every delivery, so is the webhook-id.

Every POST goes through the egress guard (:mod:`reelforge_shared.egress`): the target's name is
resolved once, off the event loop, and the POST goes to the address that was checked; no redirect
is followed (a 3xx is a failed attempt); ``REELFORGE_WEBHOOK_TIMEOUT_S`` is the deadline of the
whole attempt, answer included, so a trickling target cannot hold a send slot.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from standardwebhooks.webhooks import Webhook

from reelforge_shared.egress import Egress, EgressPolicy
from reelforge_shared.errors import PermanentError, TransientError
from reelforge_shared.events import Event, WebhookRequested
from reelforge_shared.webhooks import webhook_id

log = structlog.get_logger("reelforge.webhooks")


ANSWER_CAP = 64 * 1024  # a receiver's answer is not used: read (so the connection can be reused) up to this


def webhook_egress(allow_private: bool, timeout_s: float) -> Egress:
    """The guard webhooks are sent through: no redirects, ``timeout_s`` for the whole attempt."""
    return Egress(policy=EgressPolicy(allow_private=allow_private, deadline_s=timeout_s, max_bytes=ANSWER_CAP))


@dataclass(kw_only=True, slots=True)
class WebhookDeps:
    secret: str | None
    urls: list[str]
    egress: Egress = field(default_factory=lambda: webhook_egress(False, 10.0))
    job_webhook: Callable[[str], Awaitable[str | None]] | None = None  # the job's own webhook_url, from the ledger


async def fan_out(event: Event, deps: WebhookDeps) -> list[Event]:
    """One webhook.requested per target of this event."""
    targets = list(deps.urls)
    if deps.job_webhook is not None and (own := await deps.job_webhook(event.job_id)):
        targets.append(own)
    if targets and not deps.secret:
        log.warning("webhook.unsigned_skipped", targets=len(targets), reason="REELFORGE_WEBHOOK_SECRET is not set")
        return []
    data = json.loads(event.model_dump_json())
    return [
        WebhookRequested.follow(event, webhook_id=webhook_id(event.dedup_id(), url), url=url, type=event.subject, data=data)
        for url in dict.fromkeys(targets)
    ]


def signed_request(event: WebhookRequested, secret: str, now: datetime | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of one attempt: a fresh timestamp, the same id."""
    now = now or datetime.now(UTC)
    body = json.dumps({"type": event.type, "timestamp": event.occurred_at.isoformat(), "data": event.data}, separators=(",", ":"))
    headers = {
        "content-type": "application/json",
        "webhook-id": event.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event.webhook_id, now, body),
        "user-agent": "reelforge-webhooks/1",
    }
    return headers, body.encode()


async def send(event: WebhookRequested, deps: WebhookDeps) -> list[Event]:
    """One attempt. A refusal that retrying cannot change ends in ``webhook.failed`` at once."""
    try:
        return await _attempt(event, deps)
    except PermanentError as exc:
        log.warning("webhook.failed", webhook_id=event.webhook_id, type=event.type, error=str(exc))
        return [event.failure("uploader", f"{type(exc).__name__}: {exc}")]


async def _attempt(event: WebhookRequested, deps: WebhookDeps) -> list[Event]:
    if not deps.secret:
        raise PermanentError("REELFORGE_WEBHOOK_SECRET is not set: webhooks are sent signed or not at all")
    headers, body = signed_request(event, deps.secret)
    # Refused targets (EgressRefused, permanent) end in webhook.failed; unreachable or slow ones (EgressFailed) are retried.
    response = await deps.egress.request("POST", event.url, content=body, headers=headers)
    if response.status_code == 410:
        raise PermanentError(f"webhook {event.webhook_id}: {event.url} answered 410 Gone")
    if not 200 <= response.status_code < 300:
        raise TransientError(f"webhook {event.webhook_id}: {event.url} answered {response.status_code}")
    log.info("webhook.delivered", webhook_id=event.webhook_id, type=event.type, status=response.status_code)
    return []
