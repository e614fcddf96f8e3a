"""Webhook rules both the gateway (refusing a job's webhook_url) and the uploader (sending) apply.

- A target must be http(s) and must not resolve to a loopback, private, link-local, reserved,
  multicast or unspecified address (server-side request forgery), unless
  ``REELFORGE_WEBHOOK_ALLOW_PRIVATE=1``. The check runs again before every send: DNS can change.
- Retries follow :func:`retry_schedule`: exponential delays that add up to at least a day.
- The webhook id (Standard Webhooks' ``webhook-id``) is a function of the event and the target, so
  every retry, and a republished event, carries the same id and a receiver can drop repeats.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from urllib.parse import urlsplit

from reelforge_shared.errors import InvalidInput


def refuse_private(url: str, allow_private: bool, field: str = "webhook_url") -> None:
    """Raise InvalidInput (naming ``field`` and the URL) for a target Reelforge must not call."""
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
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise InvalidInput(
                f"{field}: {url!r} resolves to {address}, a loopback/private/reserved address; "
                "set REELFORGE_WEBHOOK_ALLOW_PRIVATE=1 to allow internal targets"
            )


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
