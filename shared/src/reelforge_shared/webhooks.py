"""Webhook rules both the gateway (refusing a job's webhook_url) and the uploader (sending) apply.

- A target must be http(s) and must not resolve to an internal address (the egress guard's rule,
  :func:`reelforge_shared.egress.refusal`: NAT64, 6to4, Teredo and IPv4-mapped forms included), unless
  ``REELFORGE_WEBHOOK_ALLOW_PRIVATE=1``. :func:`check_webhook_url` checks at submission (off the
  event loop); the send itself goes through :class:`reelforge_shared.egress.Egress`, which checks the
  address it connects to: DNS can change between the two.
- Retries follow :func:`retry_schedule`: exponential delays that add up to at least a day.
- The webhook id (Standard Webhooks' ``webhook-id``) is a function of the event and the target, so
  every retry, and a republished event, carries the same id and a receiver can drop repeats.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from urllib.parse import urlsplit

from reelforge_shared.egress import Egress, EgressFailed, EgressPolicy, refusal
from reelforge_shared.errors import InvalidInput

PRIVATE_HINT = "set REELFORGE_WEBHOOK_ALLOW_PRIVATE=1 to allow internal targets"


async def check_webhook_url(url: str, allow_private: bool, field: str = "webhook_url") -> None:
    """Raise InvalidInput (naming ``field`` and the URL) for a target Reelforge must not call; resolves in a thread."""
    try:
        await Egress(policy=EgressPolicy(allow_private=allow_private, deadline_s=5.0)).check(url, field=field)
    except EgressFailed as exc:  # does not resolve (in time): the submitter's to fix, as before
        raise InvalidInput(str(exc)) from exc
    except InvalidInput as exc:
        raise InvalidInput(f"{exc} (loopback/private/reserved); {PRIVATE_HINT}") from exc


def refuse_private(url: str, allow_private: bool, field: str = "webhook_url") -> None:
    """Raise InvalidInput (naming ``field`` and the URL) for a target Reelforge must not call.

    Blocking (``getaddrinfo``): for start-up checks of configured targets. On a serving event loop use
    :func:`check_webhook_url`.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(f"{field}: {url!r} is not an http(s) URL with a host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"{field}: host of {url!r} does not resolve ({exc})") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if (reason := refusal(address)) is not None:
            raise InvalidInput(f"{field}: {url!r} resolves to {address}, a {reason} (loopback/private/reserved); {PRIVATE_HINT}")


def retry_schedule(first_s: float, total_s: float, max_s: float = 8 * 3600.0) -> tuple[float, ...]:
    """Delays before each retry: ``first_s``, doubling, each at most ``max_s``, until they add up to ``total_s``."""
    delays: list[float] = []
    delay = max(first_s, 0.001)
    while sum(delays) < total_s:
        delays.append(min(delay, max_s))
        delay *= 2
    return tuple(delays)


def webhook_id(source_dedup_id: str, url: str) -> str:
    return "msg_" + hashlib.sha256(f"{source_dedup_id}|{url}".encode()).hexdigest()[:32]
