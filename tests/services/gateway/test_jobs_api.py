"""Jobs API v1 on a real bus, ledger and S3 server: refusals publish nothing, tokens, limits, idempotency, SSE, cancel."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelforge.stack import Stack, local_stack
from reelforge_shared.bus import Bus
from reelforge_shared.events import JobCancelled, SegmentRequested
from reelforge_tiny import resolve_model
from support.polling import poll_job

GOOD = {
    "title": "t",
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "segments": [{"id": "a", "prompt": "walks", "characters": ["hero"]}, {"id": "b", "prompt": "sits", "frames": 6}],
}
TOKENS = {"api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret"}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
BOB = {"Authorization": "Bearer tok-bob-secret"}


@pytest.fixture
async def gateway(overrides, tmp_path: Path, request) -> AsyncIterator[tuple[Stack, httpx.AsyncClient]]:
    extra = getattr(request, "param", {})
    async with local_stack(tmp_path, names=["gateway"], **overrides, **TOKENS, **extra) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=ALICE) as client:
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


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, response.text
    assert set(body) == {"error", "message", "details", "timestamp"}, body
    assert body["error"] == code, body
    return body


@pytest.mark.parametrize(
    ("board", "field"),
    [
        (_bad(lambda b: b["segments"][0].pop("prompt")), "segments[0].prompt"),
        (_bad(lambda b: b["segments"][1].update(characters=["nobody"])), "segments[1].characters[0]"),
        (_bad(lambda b: b["segments"][1].update(transition="wipe")), "segments[1].transition.type"),
        (_bad(lambda b: b.update(webhook_url="ftp://example.com/x")), "webhook_url"),
        (_bad(lambda b: b["segments"][0].update(start_from="previous")), "segments[0].start_from"),
    ],
    ids=["missing-prompt", "unknown-character", "unknown-transition", "bad-webhook", "first-starts-from-previous"],
)
async def test_bad_storyboard_is_refused_with_the_field_and_nothing_published(gateway, board, field) -> None:
    stack, client = gateway
    body = assert_error_shape(await client.post("/v1/jobs", json=board), 422, "invalid_storyboard")
    assert field in [e["field"] for e in body["details"]["fields"]]
    assert field in body["message"]
    assert await _messages(stack.settings) == 0


WAN_ID = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"  # not in this machine's cache: the gateway knows its family by the id alone


@pytest.mark.parametrize("gateway", [{"model": WAN_ID}], indirect=True)  # the generator's REELFORGE_MODEL
async def test_a_prompt_its_model_cannot_read_whole_is_refused_naming_the_field_and_the_limit(gateway, model_cache) -> None:
    stack, client = gateway
    wan = resolve_model("reelforge/tiny-wan", model_cache)  # its own tokenizer: one token per character, UMT5 reads 512
    sd = resolve_model("reelforge/tiny-sd", model_cache)  # CLIP: any length (encoded in chunks)
    ltx2 = resolve_model("reelforge/tiny-ltx2", model_cache)  # Gemma, 1024: it reads the speech too, one token per character
    board = {
        "segments": [
            {"id": "fits", "prompt": "apple " * 100, "model": wan},  # 500 characters: 501 tokens with the end token
            {"id": "cut", "prompt": "apple " * 103, "model": wan},  # 515 + 1
            {"id": "clip", "prompt": "apple " * 300, "model": sd},
            {"id": "default", "prompt": "a " * 520},  # the default model, files unseen: at least a token a word, and the end
            {"id": "default-fits", "prompt": "a " * 500},
            {"id": "says-too-much", "prompt": "apple " * 190 + "<S>" + "hello " * 12 + "<E>", "model": ltx2},  # 951 + 75
        ]
    }
    body = assert_error_shape(await client.post("/v1/jobs", json=board), 422, "invalid_storyboard")
    fields = {e["field"]: e["message"] for e in body["details"]["fields"]}
    assert list(fields) == ["segments[1].prompt", "segments[3].prompt", "segments[5].prompt"]
    cut = fields["segments[1].prompt"]
    assert "is 516 tokens" in cut
    assert "UMT5 text encoder) reads at most 512" in cut
    assert "shorten it by 4" in cut
    assert "at least 521 tokens" in fields["segments[3].prompt"]
    assert WAN_ID in fields["segments[3].prompt"]
    assert "with its speech and sound is 1026 tokens" in fields["segments[5].prompt"]
    assert "1024" in fields["segments[5].prompt"]
    assert await _messages(stack.settings) == 0
    negative = {"style": {"negative_prompt": "blurry " * 90}, "segments": [{"id": "a", "prompt": "walks", "model": wan}]}
    body = assert_error_shape(await client.post("/v1/jobs", json=negative), 422, "invalid_storyboard")
    assert body["details"]["fields"][0]["field"] == "style.negative_prompt"
    assert "is 541 tokens" in body["message"]
    video = await client.post("/api/video/text-to-video", json={"prompt": "apple " * 103, "model": wan, "duration": 1})
    assert assert_error_shape(video, 422, "invalid_request")["details"]["fields"][0]["field"] == "prompt"
    assert await _messages(stack.settings) == 0
    board["segments"] = [s for s in board["segments"] if s["id"] not in {"cut", "default", "says-too-much"}]
    accepted = await client.post("/v1/jobs", json=board)
    assert accepted.status_code == 202
    rerender = await client.post(f"/v1/jobs/{accepted.json()['job_id']}/segments/1/rerender", json={"prompt": "apple " * 103})
    body = assert_error_shape(rerender, 422, "invalid_request")  # the new prompt checked against the segment's model
    assert body["details"]["fields"][0]["field"] == "prompt"
    assert "is 516 tokens" in body["message"]


async def test_a_10mb_body_is_refused_before_parsing(gateway) -> None:
    stack, client = gateway
    response = await client.post("/v1/jobs", json={"segments": [{"id": "a", "prompt": "p" * 10_000_000}]})
    assert assert_error_shape(response, 413, "too_large")["details"]["fields"][0]["field"] == "body"
    assert await _messages(stack.settings) == 0


async def test_tokens_are_required_and_logs_name_the_caller_never_the_token(gateway, capsys) -> None:
    stack, client = gateway
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dG9rLWFsaWNlLXNlY3JldA=="}):
        response = await client.get("/v1/jobs", headers=headers)
        assert_error_shape(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/healthz", headers={"Authorization": ""})).json()["state"] in {"READY", "BUSY"}
    assert (await client.get("/v1/jobs")).status_code == 200
    out = capsys.readouterr().out
    assert "api.request" in out
    assert "alice" in out
    assert "tok-alice-secret" not in out


async def test_submission_is_202_with_location_and_the_ledger_answers(gateway, event_log) -> None:
    _, client = gateway
    yaml_board = (
        "webhook_url: http://127.0.0.1:9/hook\nmodel: org/job-model\n"
        "segments:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y, model: org/segment-model}\n"
    )
    response = await client.post("/v1/jobs", content=yaml_board, headers={"content-type": "application/yaml"})
    assert assert_error_shape(response, 422, "invalid_storyboard")["details"]["fields"][0]["field"] == "webhook_url"  # private
    response = await client.post(
        "/v1/jobs", content=yaml_board.replace("127.0.0.1:9", "93.184.215.14"), headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 202
    assert response.headers["location"] == response.json()["status_url"]
    job_id = response.json()["job_id"]
    requested = await event_log.wait_for(lambda: len(event_log.of(SegmentRequested)) == 2 and event_log.of(SegmentRequested))
    assert [(e.index, e.segment_id, e.spec.frames, e.spec.fps) for e in requested] == [(1, "a", 24, 3.0), (2, "b", 24, 3.0)]
    assert [e.model for e in requested] == ["org/job-model", "org/segment-model"]  # a model per job and per segment
    job = await poll_job(client, job_id, lambda s: len(s["segments"]) == 2)
    assert job["status"] == "queued"
    assert {s["stage"] for s in job["segments"].values()} == {"queued"}
    assert job["queue_position"] == 1
    assert job["webhook_url"] == "http://93.184.215.14/hook"
    assert job["last_event_id"] >= 3
    page = (await client.get("/v1/jobs", params={"status": "queued", "limit": 1})).json()
    assert page["total"] == 1
    assert page["jobs"][0]["job_id"] == job_id
    assert page["next"] is None
    assert (await client.get("/v1/jobs", params={"status": "completed"})).json()["total"] == 0
    assert_error_shape(await client.get(f"/v1/jobs/{job_id}", headers=BOB), 404, "job_not_found")  # not bob's
    assert_error_shape(await client.get("/v1/jobs", params={"status": "bogus"}), 422, "invalid_request")
    assert_error_shape(await client.get(f"/v1/jobs/{job_id}/film"), 409, "film_not_ready")


async def test_idempotency_key_same_body_same_job_other_body_409_and_nothing_published(gateway) -> None:
    stack, client = gateway
    first = await client.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "order-42"})
    again = await client.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    published = await _messages(stack.settings)
    assert published == 1 + len(GOOD["segments"])
    other = await client.post("/v1/jobs", json=_bad(lambda b: b.update(title="other")), headers={"Idempotency-Key": "order-42"})
    assert assert_error_shape(other, 409, "idempotency_conflict")["details"]["job_id"] == first.json()["job_id"]
    assert await _messages(stack.settings) == published
    bobs = await client.post("/v1/jobs", json=GOOD, headers={"Idempotency-Key": "order-42", **BOB})  # keys are per caller
    assert bobs.status_code == 202
    assert bobs.json()["job_id"] != first.json()["job_id"]


@pytest.mark.parametrize("gateway", [{"rate_limit_per_min": 3, "max_jobs_in_flight": 1}], indirect=True)
async def test_rate_limit_and_jobs_in_flight_per_token(gateway) -> None:
    _, client = gateway
    assert (await client.post("/v1/jobs", json=GOOD)).status_code == 202
    assert_error_shape(await client.post("/v1/jobs", json=GOOD), 429, "queue_full")
    assert (await client.get("/v1/jobs")).status_code == 200
    limited = await client.get("/v1/jobs")
    assert_error_shape(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert (await client.get("/v1/jobs", headers=BOB)).status_code == 200  # another token, its own limit


@pytest.mark.parametrize("gateway", [{"sse_heartbeat_s": 0.2}], indirect=True)
async def test_events_stream_heartbeats_closes_on_cancel_and_replays_from_last_event_id(gateway, event_log) -> None:
    _, client = gateway
    job_id = (await client.post("/v1/jobs", json=GOOD)).json()["job_id"]
    await poll_job(client, job_id, lambda s: len(s["segments"]) == 2)
    events: list[dict] = []
    pinged = asyncio.Event()

    async def follow() -> None:
        async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    pinged.set()
                elif line.startswith("data:"):
                    events.append(json.loads(line.removeprefix("data:")))

    reader = asyncio.create_task(follow())
    await asyncio.wait_for(pinged.wait(), 30)  # a heartbeat comment while nothing changes
    first = await client.post(f"/v1/jobs/{job_id}/cancel")
    again = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "cancelled"
    await asyncio.wait_for(reader, 30)  # the stream closes at the terminal state
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["kind"] == "job.created"
    assert events[-1]["status"] == "cancelled"
    await event_log.wait_for(lambda: event_log.of(JobCancelled))
    replay = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "2"})
    ids = [int(line.removeprefix("id:").strip()) for line in replay.text.splitlines() if line.startswith("id:")]
    assert ids == list(range(3, len(events) + 1))
    bus = await Bus.connect(gateway[0].settings)
    info = await bus.js.stream_info(bus.stream, subjects_filter=bus.subject(JobCancelled))
    await bus.close()
    assert sum(info.state.subjects.values()) == 1  # cancel twice, announced once


def test_queue_position_and_eta_come_from_measured_stage_times() -> None:
    from datetime import UTC, datetime, timedelta

    from reelforge_gateway.views import job_view as _view
    from reelforge_shared.jobs import JobRecord, SegmentRecord

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    timed = {
        "queued": t0,
        "generated": t0 + timedelta(seconds=10),
        "encoded": t0 + timedelta(seconds=12),
        "checked": t0 + timedelta(seconds=13),
        "delivered": t0 + timedelta(seconds=14),
    }
    done = JobRecord(
        job_id="j-done",
        status="completed",
        segment_count=1,
        created_at=t0,
        segments={1: SegmentRecord(index=1, id="a", stage="delivered", reached=timed)},
    )
    first = JobRecord(
        job_id="j-1",
        status="running",
        segment_count=2,
        created_at=t0 + timedelta(minutes=1),
        segments={1: SegmentRecord(index=1, id="a", stage="generated", reached={"queued": t0})},
    )
    second = JobRecord(job_id="j-2", status="queued", segment_count=1, created_at=t0 + timedelta(minutes=2))
    records = [done, first, second]
    assert (_view(done, records).queue_position, _view(done, records).eta_s) == (None, None)
    assert _view(first, records).queue_position == 1
    assert _view(second, records).queue_position == 2
    # first: segment 1 needs encode+check+deliver (2+1+1 s), segment 2 everything (14 s): 18 s; second waits for it, then 14 s.
    assert _view(first, records).eta_s == 18
    assert _view(second, records).eta_s == 32
