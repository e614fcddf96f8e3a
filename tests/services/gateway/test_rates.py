"""Rate limits across gateway replicas: one window per token in the job store's KV, on a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from reelforge.stack import local_stack
from reelforge_gateway.rates import SharedWindow
from reelforge_shared.bus import Bus
from reelforge_shared.jobs import Ledger
from reelforge_shared.settings import CommonSettings

TOKENS = {"api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret"}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
BOB = {"Authorization": "Bearer tok-bob-secret"}


async def test_concurrent_hits_on_two_connections_admit_exactly_the_limit(settings: CommonSettings) -> None:
    buses = [await Bus.connect(settings) for _ in range(2)]
    try:
        windows = [SharedWindow(kv=(await Ledger.open(bus)).kv, per_minute=5) for bus in buses]
        answers = await asyncio.gather(*(windows[i % 2].hit("alice") for i in range(20)))
        assert sum(a is None for a in answers) == 5
        assert all(a is not None and 1 <= a <= 60 for a in answers if a is not None)
        assert await windows[0].hit("bob") is None  # another name, its own window
    finally:
        for bus in buses:
            await bus.close()


async def test_the_window_moves_hits_leave_it_after_a_minute(settings: CommonSettings) -> None:
    bus = await Bus.connect(settings)
    try:
        now = [1000.0]
        window = SharedWindow(kv=(await Ledger.open(bus)).kv, per_minute=2, clock=lambda: now[0])
        assert [await window.hit("alice") for _ in range(3)] == [None, None, 60]
        now[0] += 30
        assert await window.hit("alice") == 30  # the first hit leaves the window 60 s after it came
        now[0] += 30.5
        assert await window.hit("alice") is None
    finally:
        await bus.close()


async def test_two_gateway_replicas_share_one_limit_per_token(overrides: dict[str, Any], tmp_path: Path) -> None:
    """Two gateways on one nats-server: a token's requests to either count against one limit."""
    limits = {**TOKENS, "rate_limit_per_min": 4}
    async with (
        local_stack(tmp_path / "a", names=["gateway"], **overrides, **limits) as first,
        local_stack(tmp_path / "b", names=["gateway"], **overrides, **limits) as second,
        httpx.AsyncClient(base_url=first.gateway_url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.gateway_url, timeout=30) as b,
    ):
        assert first.gateway_url != second.gateway_url
        answers = [await (a if i % 2 else b).get("/v1/jobs", headers=ALICE) for i in range(4)]
        assert [r.status_code for r in answers] == [200] * 4
        for client in (a, b):  # each replica has seen only 2 of alice's requests, yet both refuse her
            refused = await client.get("/v1/jobs", headers=ALICE)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"] == "rate_limited"
            assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await b.get("/v1/jobs", headers=BOB)).status_code == 200
