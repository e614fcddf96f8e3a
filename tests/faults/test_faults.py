"""The fault suite: the five services as separate `reelforge worker` processes, one fault per test.

Every test checks from outside (NATS and S3 only, see fault_harness.check_job): the job completes,
each segment is delivered once, the delivery bucket holds one film, the stream holds one
job.completed. The servers and workers are shared by the tests of this module (each test its own
job); a fault that ends a worker starts a new one, as Kubernetes would. Tiny storyboards: a few
frames of 64x36 per segment. The 3-node cluster is in test_faults_cluster.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest

from reelforge_shared.embedded import EmbeddedServer, start_nats, start_s3
from reelforge_shared.events import EVENTS_BY_SUBJECT, ModelInfo, SegmentGenerated
from reelforge_shared.flow import event_subject
from reelforge_shared.storage import Keys
from support.faults import (
    API_TOKEN,
    OBSERVER,
    SERVICES,
    System,
    check_job,
    log_lines,
    nats_authorization_for,
    s3_identities,
    storyboard,
    stream_events,
    wait_for_event,
)

pytestmark = pytest.mark.timeout(900)
PREFIX = "f" + uuid.uuid4().hex[:8]  # the module's one prefix: its NATS users' permissions name it


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EmbeddedServer]]:
    """A nats-server and an S3 server of this module's own: the tests restart and stop them."""
    root = tmp_path_factory.mktemp("fault-servers")
    found = {
        "nats": start_nats(root / "nats", extra=nats_authorization_for(PREFIX)),  # the generated users and rights
        "s3": start_s3(root / "s3", identities=s3_identities()),
    }
    yield found
    for server in found.values():
        server.stop()


@pytest.fixture(scope="module")
def system(servers: dict[str, EmbeddedServer], model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    env = {"REELFORGE_MODEL_CACHE_DIR": str(model_cache), "REELFORGE_DRAIN_S": "2"}
    system = System(tmp_path_factory.mktemp("fault-workers"), servers["nats"].url, servers["s3"].url, PREFIX, env)
    system.start_all()
    yield system
    system.stop_all()


T = TypeVar("T")


def _await(coro: Coroutine[Any, Any, T]) -> T:  # the harness is async; these tests drive processes and wait on NATS/S3
    return asyncio.run(coro)


def _wait_for_object(system: System, prefix: str, timeout: float = 120) -> None:
    store, deadline = system.store(), time.monotonic() + timeout
    while not store.list_keys(system.work_bucket, prefix):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing under {prefix}")
        time.sleep(0.05)


def _all_alive(system: System) -> None:
    dead = {n: w.process.returncode for n, w in system.workers.items() if w.process.poll() is not None}
    assert not dead, f"workers exited: {dead}"


def test_one_idempotency_key_makes_one_job(system: System) -> None:
    board = storyboard("idempotent", segments=2)
    first = system.submit(board, idempotency_key="drill-7")
    again = system.submit(board, idempotency_key="drill-7")
    assert again == first
    events = _await(check_job(system, first, 2))
    assert [s for s, _ in events].count("job.submitted") == 1


@pytest.mark.parametrize(
    ("victim", "moment"),
    [
        ("generator", "frame"),  # mid-segment: its first frame is stored, the rest not yet
        ("encoder", "film.requested"),  # while it compiles the film
        ("qa", "segment.encoded"),
        ("uploader", "segment.checked"),
    ],
)
def test_kill_9_of_a_worker_mid_work(system: System, victim: str, moment: str) -> None:
    job = system.submit(storyboard(f"kill {victim}", frames=10 if victim == "generator" else 4))
    if moment == "frame":
        _wait_for_object(system, Keys.frames(job, 1))
    else:
        _await(wait_for_event(system.nats_url, system.prefix, moment, job))
    assert system.kill(victim) == -signal.SIGKILL
    system.start(victim)
    _await(check_job(system, job, 3))
    _all_alive(system)


def test_sigterm_drains_the_generator_and_the_next_one_resumes(system: System) -> None:
    job = system.submit(storyboard("drain", segments=2, frames=24))
    _wait_for_object(system, Keys.frames(job, 1))
    began = time.monotonic()
    code = system.kill("generator", signal.SIGTERM)
    took = time.monotonic() - began
    old = system.workers["generator"]
    stored = len(system.store().list_keys(system.work_bucket, Keys.frames(job, 1)))
    system.start("generator")
    _await(check_job(system, job, 2))
    handled = [line for line in log_lines(old) if line.get("event") == "event.handled"]
    assert code == 0, (code, took)
    assert took < 2 + 15, (code, took)  # REELFORGE_DRAIN_S=2, plus the process's own exit
    assert handled, handled[-1:]
    assert handled[-1]["outcome"] in {"handed-back", "ok"}, handled[-1:]
    assert stored >= 1  # what it rendered stays stored: the next generator renders only the rest


def test_poison_on_every_subject_is_dead_lettered_and_the_job_goes_on(system: System) -> None:
    async def poison() -> None:
        nc = await nats.connect(system.nats_url, **OBSERVER)
        js = nc.jetstream()
        for subject in EVENTS_BY_SUBJECT:  # a failure's subject names its stage: segment.failed.poison
            staged = ".poison" if event_subject(f"{subject}.poison") == subject else ""
            await js.publish(f"{system.prefix}.{subject}{staged}", b"\x00 not an event")
        model = ModelInfo(name="m", pipeline="p", random_weights=True)  # decodable, but its job does not exist
        await js.publish(
            f"{system.prefix}.segment.generated",
            SegmentGenerated(
                job_id="j-poison",
                index=1,
                segment_id="s1",
                frames_prefix="nowhere/",
                frame_count=1,
                fps=1,
                width=8,
                height=8,
                model=model,
            )
            .model_dump_json()
            .encode(),
        )
        await nc.close()

    _await(poison())
    job = system.submit(storyboard("after poison", segments=2))
    _await(check_job(system, job, 2))
    failed = _await(wait_for_event(system.nats_url, system.prefix, "segment.failed", "j-poison", timeout=120))
    assert failed["stage"] == "encoder"
    assert failed["error"]
    letters = [body for subject, body in _await(stream_events(system.nats_url, system.prefix)) if subject.startswith("dead.")]
    poisoned = {
        (letter["service"], event_subject(letter["subject"].split(".", 1)[1]))
        for letter in letters
        if b"not an event" in base64.b64decode(letter["preview"])
    }
    consumers = _await(_consumers(system))  # every (service, subject) a worker consumes
    assert consumers, f"not dead-lettered: {sorted(consumers - poisoned)}"
    assert consumers <= poisoned, f"not dead-lettered: {sorted(consumers - poisoned)}"
    _all_alive(system)


async def _consumers(system: System) -> set[tuple[str, str]]:
    nc = await nats.connect(system.nats_url, **OBSERVER)
    infos = await nc.jetstream().consumers_info(system.prefix.upper())
    await nc.close()
    return {
        (i.name.split("-", 1)[0], event_subject(i.config.filter_subject.split(".", 1)[1].removesuffix(".*")))
        for i in infos
        if i.config.durable_name
    }


def test_nats_server_restarted_twice_during_one_job(system: System, servers: dict[str, EmbeddedServer]) -> None:
    job = system.submit(storyboard("nats restarts", segments=3, frames=6))
    _await(wait_for_event(system.nats_url, system.prefix, "segment.generated", job))
    servers["nats"].restart()
    _await(wait_for_event(system.nats_url, system.prefix, "segment.encoded", job))
    servers["nats"].restart()
    _await(check_job(system, job, 3))
    _all_alive(system)  # the workers reconnected; none was restarted


def test_s3_down_for_60_s_mid_job(system: System, servers: dict[str, EmbeddedServer]) -> None:
    job = system.submit(storyboard("s3 outage", segments=3, frames=6))
    _await(wait_for_event(system.nats_url, system.prefix, "segment.generated", job))
    servers["s3"].kill()
    down_at = time.monotonic()
    reported: set[str] = set()
    while time.monotonic() - down_at < 60:  # the outage itself lasts 60 s; meanwhile /healthz must say so
        for name in SERVICES:
            health = system.workers[name].health() or {}
            if any("s3" in s.get("down", {}) for s in health.get("services", [])):
                reported.add(name)
        time.sleep(1)
    servers["s3"].restart()
    _await(check_job(system, job, 3, timeout=300))
    events = _await(stream_events(system.nats_url, system.prefix, job))
    assert not [b for s, b in events if s == "segment.failed"]
    assert reported, "no worker reported s3 down on /healthz"
    _all_alive(system)


def _generator_frames(system: System) -> float:
    """Frames the current generator process rendered (its reelforge_generator_frames_total)."""
    url = f"http://127.0.0.1:{system.workers['generator'].health_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(r"^reelforge_generator_frames_total\{[^}]*\} (\S+)$", text, re.M))


def _job_record(system: System, job: str) -> dict:
    request = urllib.request.Request(f"{system.gateway_url}/v1/jobs/{job}", headers={"Authorization": f"Bearer {API_TOKEN}"})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def test_a_job_failed_past_the_outage_tolerance_resumes_when_resubmitted(
    system: System, servers: dict[str, EmbeddedServer]
) -> None:
    """S3 down past a 1 s tolerance fails the job; the same storyboard and Idempotency-Key resume it from what is stored."""
    board = storyboard("resume", segments=3, frames=12)
    board["segments"][0]["frames"] = 2
    system.kill("generator", signal.SIGTERM)
    system.start("generator", REELFORGE_OUTAGE_TOLERANCE_S="1")
    system.wait_ready(("generator",))
    job = system.submit(board, idempotency_key="resume-1")
    _wait_for_object(system, Keys.frames(job, 2))  # segment 2 is rendering: its first frame is stored
    os.kill(system.workers["generator"].process.pid, signal.SIGSTOP)  # hold it there while segment 1 is delivered
    try:
        _await(wait_for_event(system.nats_url, system.prefix, "segment.delivered", job))
        servers["s3"].kill()
    finally:
        os.kill(system.workers["generator"].process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 120
    while (record := _job_record(system, job))["status"] != "failed" or any(
        record["segments"].get(str(n), {}).get("stage") != "failed" for n in (2, 3)
    ):
        assert time.monotonic() < deadline, record
        time.sleep(0.5)
    assert "REELFORGE_OUTAGE_TOLERANCE_S" in record["segments"]["2"]["error"], record["segments"]["2"]
    assert record["segments"]["1"]["stage"] == "delivered"
    servers["s3"].restart()
    system.kill("generator", signal.SIGTERM)
    system.start("generator")
    system.wait_ready(("generator",))
    store = system.store()
    stored = {n: len(store.list_keys(system.work_bucket, Keys.frames(job, n))) for n in (1, 2, 3)}
    assert stored[1] == 2, stored
    assert stored[2] >= 1, stored

    assert system.submit(board, idempotency_key="resume-1") == job  # the same job, resumed
    events = _await(check_job(system, job, 3))
    generated = Counter(body["index"] for subject, body in events if subject == "segment.generated")
    assert generated == {1: 1, 2: 1, 3: 1}, generated  # segment 1 was not rendered again
    assert {b["index"] for s, b in events if s == "segment.failed"} == {2, 3}
    assert _generator_frames(system) == (12 - stored[2]) + (12 - stored[3])  # only the frames not stored were rendered
    assert system.submit(board, idempotency_key="resume-1") == job  # a completed job is not resumed again
    assert _job_record(system, job)["status"] == "completed"
    _all_alive(system)
