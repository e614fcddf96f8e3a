"""ASGI middleware of the gateway: what runs around every request, before a route reads a byte of the body.

- :class:`Guard` answers a request before any route reads its body: no or a wrong bearer token is 401,
  a token past its rate limit 429, and a body larger than the route's limit 413, whether the limit is
  passed by the declared ``Content-Length`` or by the bytes streamed so far (chunked bodies). The
  route sees at most ``limit`` bytes; the rest is never read into the process.
- :class:`RequestLog` writes one line per API call naming the caller (the token's name, never the token).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelforge_gateway.auth import Access
from reelforge_gateway.errors import ApiError, error_response

log = structlog.get_logger("reelforge.gateway")
GUARDED_PREFIXES = ("/v1/", "/api/")
OPS_PATHS = ("/metrics", "/docs", "/redoc", "/openapi.json")  # behind a token where REELFORGE_OPS_ENDPOINTS says so
UPLOAD_PATHS = frozenset({"/v1/uploads", "/api/video/image-to-video"})


@dataclass(kw_only=True, frozen=True, slots=True)
class BodyLimits:
    """The most bytes a request body may have: uploads (multipart images) have their own, larger limit."""

    body_bytes: int
    upload_bytes: int

    def for_path(self, path: str) -> tuple[int, str]:
        """The limit of ``path`` and the setting that sets it."""
        if path in UPLOAD_PATHS:
            return self.upload_bytes, "REELFORGE_MAX_UPLOAD_BYTES"
        return self.body_bytes, "REELFORGE_MAX_BODY_BYTES"


def too_large(limit: int, setting: str) -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"the body is more than {limit} bytes ({setting})",
        fields=[{"field": "body", "message": f"more than {limit} bytes"}],
        limit=limit,
    )


class Guard:
    """Authentication, rate limit and body-size limit on every request, before any body is read."""

    def __init__(self, app: ASGIApp, *, access: Access, limits: BodyLimits, ops_need_token: bool = False) -> None:
        self.app, self.access, self.limits = app, access, limits
        self.guarded = GUARDED_PREFIXES + (OPS_PATHS if ops_need_token else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        limit, setting = self.limits.for_path(scope["path"])
        try:
            if scope["path"].startswith(self.guarded):
                caller = self.access.caller(headers.get("authorization"))
                scope.setdefault("state", {})["caller"] = caller
                structlog.contextvars.bind_contextvars(caller=caller)
                await self.access.admit(caller)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise too_large(limit, setting)
        except ApiError as refused:
            await _answer(refused, scope, receive, send)
            return
        await self._limited(scope, receive, send, limit, setting)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int, setting: str) -> None:
        """Run the route with a body cut at ``limit``: past it, the route is told the client left, and 413 is sent."""
        received = 0
        over = started = False

        async def counted() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def answered(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the route's answer to a body it could not read whole: 413 goes instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answered)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await _answer(too_large(limit, setting), scope, receive, send)


async def _answer(refused: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(refused.status, refused.error, refused.message, refused.headers, **refused.details)
    await response(scope, receive, send)


class RequestLog:
    """One line per API call naming the caller (the token's name, never the token), its status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                log.info(
                    "api.request",
                    caller=scope.get("state", {}).get("caller"),
                    method=scope["method"],
                    path=scope["path"],
                    status=message["status"],
                    seconds=round(time.perf_counter() - started, 3),
                )
            await send(message)

        await self.app(scope, receive, sent)
