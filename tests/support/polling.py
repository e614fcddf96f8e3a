"""Waiting on what the services write, by reading it again (the ledger follows the bus)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client import REGISTRY


async def poll_job(
    client: httpx.AsyncClient,
    job_id: str,
    condition: Callable[[dict[str, Any]], Any],
    attempts: int = 300,
    every_s: float = 0.1,
) -> dict[str, Any]:
    """Read GET /v1/jobs/{id} every ``every_s`` until its body meets `condition`; fail naming the last answer."""
    for _ in range(attempts):
        response = await client.get(f"/v1/jobs/{job_id}")
        if response.status_code == 200 and condition(body := response.json()):
            return body
        await asyncio.sleep(every_s)
    raise AssertionError(f"job {job_id} never reached the condition: {response.text}")


def counter_total(name: str) -> float:
    """A counter's total over every label set, as the services of this process counted it (``name`` without ``_total``)."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == name
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def frames_rendered() -> float:
    """Frames the generators of this process rendered (reelforge_generator_frames_total): a render shows here, a reuse not."""
    return counter_total("reelforge_generator_frames")
