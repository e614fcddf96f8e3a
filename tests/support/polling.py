"""Waiting on what the services write, by reading it again (the ledger follows the bus)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx


async def poll_job(
    client: httpx.AsyncClient, job_id: str, condition: Callable[[dict[str, Any]], Any], attempts: int = 300
) -> dict[str, Any]:
    """Read GET /v1/jobs/{id} every 0.1 s until its body meets `condition`; fail naming the last answer."""
    for _ in range(attempts):
        response = await client.get(f"/v1/jobs/{job_id}")
        if response.status_code == 200 and condition(body := response.json()):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached the condition: {response.text}")
