"""The jobs API on a real bus and S3 server: refusals publish nothing, submissions are idempotent."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_shared.bus import Bus
from reelforge_shared.events import SegmentRequested

GOOD = {
    "title": "t",
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "segments": [{"id": "a", "prompt": "walks", "characters": ["hero"]}, {"id": "b", "prompt": "sits", "frames": 6}],
}


@pytest.fixture
async def gateway(overrides, tmp_path: Path):
    async with local_stack(tmp_path, names=["gateway"], **overrides) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            yield stack, client


async def _messages(settings) -> int:
    bus = await Bus.connect(settings)
    info = await bus.js.stream_info(bus.stream)
    await bus.close()
    return info.state.messages


def _bad(change) -> dict:
    board = copy.deepcopy(GOOD)
    change(board)
    return board


@pytest.mark.parametrize(
    ("board", "field"),
    [
        (_bad(lambda b: b["segments"][0].pop("prompt")), "segments[0].prompt"),
        (_bad(lambda b: b["segments"][1].update(frames=0)), "segments[1].frames"),
        (_bad(lambda b: b["segments"][1].update(characters=["nobody"])), "segments[1].characters[0]"),
        (_bad(lambda b: b["segments"][1].update(transition="wipe")), "segments[1].transition.type"),
        (_bad(lambda b: b["segments"][0].update(prompt="p" * 4_000_000)), "segments[0].prompt"),
    ],
    ids=["missing-prompt", "zero-frames", "unknown-character", "unknown-transition", "huge-prompt"],
)
async def test_bad_storyboard_is_refused_with_the_field_and_nothing_published(gateway, board, field) -> None:
    stack, client = gateway
    response = await client.post("/v1/jobs", json=board)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["detail"]]
    assert await _messages(stack.settings) == 0


async def test_a_10mb_body_is_refused_before_parsing(gateway) -> None:
    stack, client = gateway
    response = await client.post("/v1/jobs", json={"segments": [{"id": "a", "prompt": "p" * 10_000_000}]})
    assert response.status_code == 413 and response.json()["detail"][0]["field"] == "body"
    assert await _messages(stack.settings) == 0


async def test_submission_publishes_one_event_per_segment_and_state_is_readable(gateway, event_log) -> None:
    _, client = gateway
    response = await client.post("/v1/jobs", content="segments:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y}\n",
                                 headers={"content-type": "application/yaml"})
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    requested = await event_log.wait_for(lambda: len(event_log.of(SegmentRequested)) == 2 and event_log.of(SegmentRequested))
    assert [(e.index, e.segment_id, e.spec.frames, e.spec.fps) for e in requested] == [(1, "a", 24, 3.0), (2, "b", 24, 3.0)]
    status = await _poll(client, job_id, lambda s: len(s["segments"]) == 2)
    assert status["status"] == "queued" and {s["stage"] for s in status["segments"].values()} == {"queued"}


async def test_the_same_idempotency_key_is_the_same_job_published_once(gateway) -> None:
    stack, client = gateway
    first = await client.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "order-42"})
    again = await client.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "order-42"})
    assert first.json()["job_id"] == again.json()["job_id"]
    assert await _messages(stack.settings) == 1 + len(GOOD["segments"])


async def test_unknown_job_is_404_and_health_and_metrics_answer(gateway) -> None:
    _, client = gateway
    assert (await client.get("/v1/jobs/j-nope")).status_code == 404
    assert (await client.get("/healthz")).json()["state"] in {"READY", "BUSY"}
    assert "reelforge_events_handled_total" in (await client.get("/metrics/")).text


async def _poll(client: httpx.AsyncClient, job_id: str, condition, attempts: int = 300) -> dict:
    """The state document is eventually consistent with the bus: read it until it shows the condition."""
    import asyncio

    for _ in range(attempts):
        response = await client.get(f"/v1/jobs/{job_id}")
        if response.status_code == 200 and condition(body := response.json()):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached the condition: {response.text}")
