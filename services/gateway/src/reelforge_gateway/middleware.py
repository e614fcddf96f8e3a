"""ASGI middleware of the gateway: what runs around every request, before and after the routes."""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("reelforge.gateway")
LOGGED_PREFIXES = ("/v1/", "/api/")


class RequestLog:
    """One line per API call naming the caller (the token's name, never the token), its status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LOGGED_PREFIXES):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                log.info(
                    "api.request",
                    caller=scope.get("state", {}).get("caller"),
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    seconds=round(time.perf_counter() - started, 3),
                )
            await send(message)

        await self.app(scope, receive, sent)
