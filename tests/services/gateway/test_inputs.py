"""Bounded inputs: YAML without anchors or aliases, parsing off the event loop, finite and bounded numbers, short errors.

Each refusal is a 422 naming the field, the value and the limit, and nothing is published for it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelforge.stack import Stack, local_stack
from reelforge_shared.bounded_yaml import load_bounded
from reelforge_shared.bus import Bus
from support.cpu import cpu_s, thread_cpu_s

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


# 80,000 one-key maps in a flow sequence: 560 kB, about two seconds of CPU to read whole; and a twentieth of it.
SLOW_YAML = "segments: [" + ",".join(["{a: 1}"] * 80_000) + "]"
TWENTIETH = "segments: [" + ",".join(["{a: 1}"] * 4_000) + "]"
PARSE_THREAD = "reelforge-parse"


def _parse_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == PARSE_THREAD]


@pytest.mark.parametrize("gateway", [{"parse_timeout_s": 0.3, "max_yaml_bytes": 600_000}], indirect=True)
async def test_a_storyboard_past_the_time_limit_is_refused_in_time_and_its_parse_stops(gateway) -> None:
    """Counted in the parse thread's CPU time (support.cpu), which the machine's other work does not stretch: a parse
    that stops at the time limit runs at most its 0.3 s and one step, by the refusal and by the end of its thread; one
    that read on (or a refusal that waited for it) would run the whole YAML, twenty times what a twentieth costs here.

    The cyclic collector does not run inside the read (counted): a full collection of the read's objects held the GIL,
    and /healthz waited, 277-570 ms. Wall-clock bounds on the answer and on /healthz failed on a loaded machine."""
    stack, client = gateway
    assert len(SLOW_YAML) < 600_000  # within the size limit: only the time limit stops it
    _refused(await client.post("/v1/jobs", content="segments: []"), "segments")  # warm: imports, the rate window
    twentieth = cpu_s(lambda: load_bounded(TWENTIETH))
    collections_in_read = 0  # the cyclic collector's runs inside a YAML read (load_bounded on the stack)

    def collecting(phase: str, info: dict[str, int]) -> None:
        nonlocal collections_in_read
        frame = sys._getframe()
        while phase == "start" and frame is not None:
            collections_in_read += frame.f_code is load_bounded.__code__
            frame = frame.f_back

    before = {t.native_id for t in _parse_threads()}
    cpu: dict[int, float] = {}  # CPU seconds of each new parse thread, last seen while it ran

    def seen() -> list[int]:
        """The new parse threads that run, their CPU time noted."""
        running = []
        for thread in _parse_threads():
            if thread.native_id is not None and thread.native_id not in before:
                if (spent := thread_cpu_s(thread.native_id)) is not None:
                    cpu[thread.native_id] = spent
                    running.append(thread.native_id)
        return running

    gc.callbacks.append(collecting)
    try:
        parsing = asyncio.create_task(client.post("/v1/jobs", content=SLOW_YAML, headers={"content-type": "application/yaml"}))
        while not parsing.done():  # (/healthz answers meanwhile: test_the_event_loop_serves_healthz_while_...)
            seen()
            await asyncio.sleep(0.01)
        seen()
        at_refusal = dict(cpu)
        _refused(await parsing, "storyboard", "REELFORGE_PARSE_TIMEOUT_S")
        for _ in range(6000):  # until the parse thread ends (a minute at most, for a broken gateway that reads on)
            if not seen():
                break
            await asyncio.sleep(0.01)
    finally:
        gc.callbacks.remove(collecting)
    assert cpu, "the storyboard was not read in a parse thread of its own"
    bound = 0.3 + 3 * twentieth  # the time limit, and one step past it with a wide margin: far from the whole read
    when_refused, in_all = sum(at_refusal.values()), sum(cpu.values())
    assert when_refused < bound, f"refused after {when_refused:.2f} s of parse CPU (a twentieth read: {twentieth:.3f} s)"
    assert in_all < bound, f"the parse ran {in_all:.2f} s of CPU (a twentieth read: {twentieth:.3f} s)"
    assert not seen(), "the parse thread still runs"
    assert collections_in_read == 0, f"the collector ran {collections_in_read} times in the parse"
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
