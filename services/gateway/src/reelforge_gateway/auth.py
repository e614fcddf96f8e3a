"""Who is calling, and how often: bearer tokens from REELFORGE_API_TOKENS and per-token limits.

Tokens are ``name:token`` pairs. A request to ``/v1/...`` or ``/api/...`` without a known token gets
401 from :class:`reelforge_gateway.middleware.Guard`, before its body is read; the caller is known by
its name from then on (logs carry the name, never the token). Each name may make
REELFORGE_RATE_LIMIT_PER_MIN requests in any minute (429 with Retry-After above it): a moving window
kept in the job store's KV bucket (:mod:`reelforge_gateway.rates`), so it holds across every gateway
replica, not per process.
With REELFORGE_API_AUTH=off (local mode) every caller is ``local`` (the owner of everything submitted without
an API identity: `reelforge run`, `reelforge submit`, events put on the bus) and no limit applies.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from reelforge_gateway.errors import ApiError
from reelforge_gateway.rates import SharedWindow
from reelforge_shared.jobs import LOCAL_OWNER


def parse_names(raw: str) -> frozenset[str]:
    return frozenset(n.strip() for n in raw.split(",") if n.strip())


def parse_tokens(raw: str | None) -> dict[str, str]:
    """``name:token,...`` -> {token: name}; a malformed pair is named by position, never echoed."""
    tokens: dict[str, str] = {}
    for position, pair in enumerate(p.strip() for p in (raw or "").split(",") if p.strip()):
        name, sep, token = pair.partition(":")
        if not sep or not name.strip() or not token.strip():
            raise ValueError(f"REELFORGE_API_TOKENS: pair {position + 1} is not name:token")
        if token.strip() in tokens:
            raise ValueError(f"REELFORGE_API_TOKENS: pair {position + 1} ({name.strip()}) repeats another pair's token")
        tokens[token.strip()] = name.strip()
    return tokens


@dataclass(kw_only=True)
class Access:
    tokens: dict[str, str]  # token -> name
    enabled: bool = True
    admins: frozenset[str] = frozenset()  # names that see every owner's jobs
    window: SharedWindow | None = None  # the rate limit's window (every replica's); required with auth on

    def __post_init__(self) -> None:
        if self.enabled and self.window is None:
            raise ValueError("Access with auth on needs its rate window (reelforge_gateway.rates.SharedWindow)")

    def caller(self, authorization: str | None) -> str:
        if not self.enabled:
            return LOCAL_OWNER
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and presented:
            for token, name in self.tokens.items():  # compare every token in constant time
                if hmac.compare_digest(token.encode(), presented.strip().encode()):
                    return name
        raise ApiError(
            401,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def sees(self, caller: str, owner: str) -> bool:
        """Whether ``caller`` may see a job of ``owner``: its own, or any with the admin scope (or with auth off)."""
        return not self.enabled or caller == owner or caller in self.admins

    async def admit(self, name: str) -> None:
        if not self.enabled or self.window is None:
            return
        if (retry := await self.window.hit(name)) is not None:
            per_minute = self.window.per_minute
            raise ApiError(
                429,
                "rate_limited",
                f"more than {per_minute} requests in a minute; retry in {retry} s",
                headers={"Retry-After": str(retry)},
                limit_per_min=per_minute,
                retry_after_s=retry,
            )


def caller_of(request: Request) -> str:
    return getattr(request.state, "caller", LOCAL_OWNER)
