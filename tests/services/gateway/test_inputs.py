"""Bounded inputs: YAML without anchors or aliases, parsing off the event loop, finite and bounded numbers, short errors.

Each refusal is a 422 naming the field, the value and the limit, and nothing is published for it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelforge.stack import Stack, local_stack
from reelforge_shared.bus import Bus

TOKEN = {"Authorization": "Bearer tok-alice-secret"}
LIMITS = {
    "api_tokens": "alice:tok-alice-secret",
    "max_segments": 3,
    "max_frames_per_segment": 48,
    "max_film_seconds": 20,
    "max_output_pixels": 1280 * 720,
    "max_field_chars": 300,
    "default_text_to_video_model": "reelforge/tiny-zeroscope",
    "sync_timeout_s": 0,
}
# Eight levels of anchors, each nine aliases of the one before: 9^8 = 43 million strings once expanded.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.fixture
async def gateway(overrides, tmp_path: Path, request) -> AsyncIterator[tuple[Stack, httpx.AsyncClient]]:
    extra = getattr(request, "param", {})
    async with local_stack(tmp_path, names=["gateway"], **overrides, **LIMITS, **extra) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=TOKEN) as client:
            yield stack, client


async def _published(settings) -> int:
    bus = await Bus.connect(settings)
    info = await bus.js.stream_info(bus.stream)
    await bus.close()
    return info.state.messages


def _board(**segment: object) -> dict:
    return {"segments": [{"id": "a", "prompt": "walks", **segment}]}


def _refused(response: httpx.Response, field: str, *words: str) -> str:
    body = response.json()
    assert response.status_code == 422, response.text
    errors = body["details"]["fields"]
    message = next((e["message"] for e in errors if e["field"] == field), None)
    assert message is not None, errors
    assert all(w in message for w in words), message
    return message


async def test_yaml_anchors_and_aliases_are_refused_naming_the_line(gateway) -> None:
    stack, client = gateway
    response = await client.post("/v1/jobs", content=ALIAS_BOMB, headers={"content-type": "application/yaml"})
    message = _refused(response, "storyboard", "line 1", "anchor")
    assert len(response.content) < 2000
    assert len(message) < 200
    anchored = "title: x\nsegments:\n  - &s {id: a, prompt: walks}\n"
    _refused(await client.post("/v1/jobs", content=anchored), "storyboard", "line 3")
    aliased = "title: &t x\nsegments:\n  - {id: a, prompt: *t}\n"
    _refused(await client.post("/v1/jobs", content=aliased), "storyboard", "line 1")
    assert await _published(stack.settings) == 0


@pytest.mark.parametrize("gateway", [{"max_yaml_bytes": 400_000, "parse_timeout_s": 30}], indirect=True)
async def test_the_event_loop_serves_healthz_while_a_storyboard_is_parsed(gateway) -> None:
    stack, client = gateway
    segment = "  - id: s{n}\n    prompt: walks into the field and looks at the apple tree for a while\n    frames: 24\n"
    big = "segments:\n" + "".join(segment.format(n=n) for n in range(3500))  # ~380 kB of YAML: seconds to read
    parsing = asyncio.create_task(client.post("/v1/jobs", content=big, headers={"content-type": "application/yaml"}))
    answered_meanwhile = 0
    while not parsing.done():
        health = await client.get("/healthz")
        assert health.status_code == 200
        answered_meanwhile += not parsing.done()
    _refused(await parsing, "segments", "3500")  # read whole, then refused: more segments than allowed
    assert answered_meanwhile >= 1
    assert await _published(stack.settings) == 0


@pytest.mark.parametrize("gateway", [{"parse_timeout_s": 0.001}], indirect=True)
async def test_a_storyboard_not_read_within_the_time_limit_is_refused(gateway) -> None:
    _, client = gateway
    big = "segments:\n" + "".join(f"  - {{id: s{n}, prompt: walks into the field}}\n" for n in range(2000))
    _refused(await client.post("/v1/jobs", content=big), "storyboard", "REELFORGE_PARSE_TIMEOUT_S")


# 36,000 one-key maps in a flow sequence: 252 kB, under the default REELFORGE_MAX_YAML_BYTES, seconds to read whole.
SLOW_YAML = "segments: [" + ",".join(["{a: 1}"] * 36_000) + "]"
PARSE_THREAD = "reelforge-parse"


def _parse_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == PARSE_THREAD]


@pytest.mark.parametrize("gateway", [{"parse_timeout_s": 0.3}], indirect=True)
async def test_a_storyboard_past_the_time_limit_is_refused_in_time_and_its_parse_stops(gateway) -> None:
    stack, client = gateway
    assert len(SLOW_YAML) < 256_000  # within the size limit: only the time limit stops it
    _refused(await client.post("/v1/jobs", content="segments: []"), "segments")  # warm: imports, the rate window
    baseline = 0.0  # the slowest /healthz without a parse: what the (shared, loaded) machine adds by itself
    for _ in range(10):
        asked = time.monotonic()
        assert (await client.get("/healthz")).status_code == 200
        baseline = max(baseline, time.monotonic() - asked)
    started = time.monotonic()
    parsing = asyncio.create_task(client.post("/v1/jobs", content=SLOW_YAML, headers={"content-type": "application/yaml"}))
    seen_parsing, health = False, []
    while not parsing.done():
        seen_parsing = seen_parsing or bool(_parse_threads())
        asked = time.monotonic()
        assert (await client.get("/healthz")).status_code == 200
        health.append(time.monotonic() - asked)
    answered = time.monotonic() - started
    _refused(await parsing, "storyboard", "REELFORGE_PARSE_TIMEOUT_S")
    assert answered < 1.0, f"answered after {answered:.2f} s"
    assert statistics.median(health) < 0.1, f"/healthz took {health} s during the parse"
    assert max(health) < 0.1 + baseline, f"/healthz took {max(health):.3f} s during the parse ({baseline:.3f} s without)"
    assert seen_parsing, "the storyboard was not read in a parse thread of its own"
    # The parse itself stopped at the deadline: its thread ends, it does not read on for seconds.
    while _parse_threads() and time.monotonic() - started < 1.5:
        await asyncio.sleep(0.02)
    assert not _parse_threads(), f"the parse thread still runs {time.monotonic() - started:.1f} s after the request"
    assert await _published(stack.settings) == 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ('{"segments": [{"id": "a", "prompt": "x", "fps": NaN}]}', "segments[0].fps", ("finite",)),
        ('{"segments": [{"id": "a", "prompt": "x", "fps": 1e400}]}', "segments[0].fps", ("finite",)),
        ("segments: [{id: a, prompt: x, fps: .inf}]", "segments[0].fps", ("finite",)),
        (json.dumps(_board(fps=1e-6)), "segments[0].fps", ("1e-06", "greater than or equal to 1")),
        (json.dumps(_board(fps=5e-324)), "segments[0].fps", ("5e-324", "greater than or equal to 1")),
        (json.dumps(_board(fps=61)), "segments[0].fps", ("61", "less than or equal to 60")),
        (json.dumps(_board(frames=49)), "segments[0].frames", ("49", "48", "REELFORGE_MAX_FRAMES_PER_SEGMENT")),
        (json.dumps(_board(frames=48, fps=1)), "segments", ("48.0 s", "20", "REELFORGE_MAX_FILM_SECONDS")),
        (json.dumps(_board(prompt="p" * 301)), "segments[0].prompt", ("301 characters", "300", "REELFORGE_MAX_FIELD_CHARS")),
        (
            json.dumps(_board() | {"output": {"width": 1920, "height": 1080}}),
            "output",
            ("1920x1080", "REELFORGE_MAX_OUTPUT_PIXELS"),
        ),
        (
            json.dumps({"segments": [{"id": f"s{n}", "prompt": "x", "frames": 3} for n in range(4)]}),
            "segments",
            ("4 segments", "3", "REELFORGE_MAX_SEGMENTS"),
        ),
    ],
    ids=[
        "nan",
        "1e400",
        "yaml-inf",
        "fps-1e-6",
        "fps-denormal",
        "fps-61",
        "frames",
        "film-seconds",
        "chars",
        "pixels",
        "segments",
    ],
)
async def test_numbers_are_finite_and_within_the_limits(gateway, body: str, field: str, words: tuple[str, ...]) -> None:
    stack, client = gateway
    _refused(await client.post("/v1/jobs", content=body, headers={"content-type": "application/json"}), field, *words)
    assert await _published(stack.settings) == 0


async def test_an_error_shows_a_value_cut_short(gateway) -> None:
    _, client = gateway
    response = await client.post("/v1/jobs", json={"title": ["t" * 100_000] * 40, "segments": [{"id": "a", "prompt": "x"}]})
    message = _refused(response, "title")
    assert len(message) < 300
    assert len(response.content) < 2000


async def test_video_numbers_are_finite(gateway) -> None:
    stack, client = gateway
    for duration in ("NaN", "Infinity", "1e400"):
        body = f'{{"prompt": "x", "duration": {duration}}}'
        response = await client.post("/api/video/text-to-video", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["details"]["fields"][0]["field"].endswith("duration"), response.text
    assert await _published(stack.settings) == 0
