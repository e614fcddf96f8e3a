"""/metrics and the API docs: open, behind a token, or /metrics only on the internal metrics port (REELFORGE_OPS_ENDPOINTS)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reelforge.stack import local_stack

TOKEN = {"Authorization": "Bearer tok-ops-secret"}


@pytest.mark.parametrize("mode", ["public", "token", "internal"])
async def test_ops_endpoints_follow_the_setting(overrides, tmp_path: Path, mode: str) -> None:
    settings = {"api_tokens": "ops:tok-ops-secret", "ops_endpoints": mode}
    async with local_stack(tmp_path, names=["gateway"], **overrides, **settings) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            for path in ("/openapi.json", "/docs"):
                anonymous = await client.get(path)
                assert anonymous.status_code == (200 if mode == "public" else 401), (path, anonymous.text)
                assert (await client.get(path, headers=TOKEN)).status_code == 200
            metrics_anonymous = await client.get("/metrics/")
            metrics_token = await client.get("/metrics/", headers=TOKEN)
            expected = {"public": (200, 200), "token": (401, 200), "internal": (401, 404)}[
                mode
            ]  # internal: not served here at all
            assert (metrics_anonymous.status_code, metrics_token.status_code) == expected
            assert (await client.get("/healthz")).status_code == 200  # probes stay open
