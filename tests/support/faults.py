"""The five services as separate ``reelforge worker`` processes, and the checks a fault test makes from outside.

Used by tests/faults/test_faults*.py, the outage soak (tests/faults/soak_outage.py) and the load benchmark
(bench/load.py). Each worker is a real process with its own /healthz port, so a fault (kill -9,
SIGTERM, a server restarted) hits exactly one process; the checks read only NATS and S3.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from reelforge_shared.access import nats_authorization, seaweedfs_identities
from reelforge_shared.embedded import ACCESS_KEY, SECRET_KEY, find_binary, free_port
from reelforge_shared.flow import event_subject
from reelforge_shared.storage import DeliveryKeys, ObjectStore

SERVICES = ("gateway", "generator", "encoder", "qa", "uploader")
API_TOKEN = "fault-drill-token"
# Each worker runs under its own S3 identity (a worker refuses the built-in key); the S3 server knows them all.
WORKER_KEYS = {name: (f"fault-{name}", f"fault-{name}-{uuid.uuid4().hex}") for name in SERVICES}


# Each worker connects as its own NATS user, bootstrap as admin, the checks from outside as admin too: a server
# started with nats_authorization(prefix) holds those users (one without authorization ignores the credentials).
NATS_PASSWORDS = {name: f"fault-{name}-{uuid.uuid4().hex}" for name in (*SERVICES, "downstream", "admin")}
OBSERVER = {"user": "admin", "password": NATS_PASSWORDS["admin"]}


def nats_authorization_for(prefix: str) -> str:
    """The nats-server ``authorization`` block of the generated identities for this prefix, with the drill's passwords."""
    return nats_authorization(prefix, NATS_PASSWORDS)


def s3_identities() -> list[dict]:
    """The workers' S3 identities for ``start_s3``, with the rights of reelforge_shared.access on the drill buckets."""
    return seaweedfs_identities(WORKER_KEYS, "work-*", "deliver-*")["identities"]


TINY = {  # a few frames, a small size: seconds per job on two CPU cores
    "title": "fault drill",
    "output": {"width": 64, "height": 36},
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "locations": {"field": {"description": "a bright field", "seed": 5000}},
    "segments": [
        {"id": f"s{n}", "prompt": f"shot {n}", "characters": ["hero"], "location": "field", "frames": 6, "fps": 3}
        for n in range(1, 4)
    ],
}


def storyboard(title: str, segments: int = 3, frames: int = 6) -> dict[str, Any]:
    board = json.loads(json.dumps(TINY))
    board["title"] = title
    board["segments"] = [
        dict(board["segments"][0], id=f"s{n}", prompt=f"{title} shot {n}", frames=frames) for n in range(1, segments + 1)
    ]
    return board


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    health_port: int
    log: Path

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 503 carries the body too
            return json.loads(exc.read())
        except OSError:
            return None


@dataclass
class System:
    """Workers of every service against given NATS and S3 servers, under one subject prefix."""

    root: Path
    nats_url: str
    s3_endpoint: str
    prefix: str
    env: dict[str, str] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    gateway_port: int = field(default_factory=free_port)

    @property
    def work_bucket(self) -> str:
        return f"work-{self.prefix}"

    @property
    def delivery_bucket(self) -> str:
        return f"deliver-{self.prefix}"

    def environment(self, name: str, health_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
        env.update(
            {
                "REELFORGE_NATS_URL": self.nats_url,
                "REELFORGE_S3_ENDPOINT": self.s3_endpoint,
                "REELFORGE_S3_ACCESS_KEY": WORKER_KEYS[name][0],
                "REELFORGE_S3_SECRET_KEY": WORKER_KEYS[name][1],
                "REELFORGE_NATS_USER": name,
                "REELFORGE_NATS_PASSWORD": NATS_PASSWORDS[name],
                "REELFORGE_SUBJECT_PREFIX": self.prefix,
                "REELFORGE_WORK_BUCKET": self.work_bucket,
                "REELFORGE_DELIVERY_BUCKET": self.delivery_bucket,
                "REELFORGE_METRICS_PORT": str(health_port),
                "REELFORGE_GATEWAY_PORT": str(self.gateway_port),
                "REELFORGE_LOG_JSON": "true",
                "REELFORGE_ACK_WAIT_S": "4",
                "REELFORGE_RETRY_DELAY_S": "0.5",
                "REELFORGE_STEPS": "2",
                "REELFORGE_BATCH_SIZE": "1",
                "REELFORGE_QA_MAX_ATTEMPTS": "1",
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                "REELFORGE_API_TOKENS": f"drill:{API_TOKEN}",
                "REELFORGE_ALLOW_TEST_MODEL": "1",  # the tiny random-weight model, on purpose
            }
        )
        env.update(self.env)
        return env

    def start(self, name: str, **extra_env: str) -> Worker:
        port = free_port()
        log = self.root / f"{name}.log"
        env = self.environment(name, port) | extra_env
        if not self.workers:  # buckets, stream and job store, made with the admin identity as a deploy does
            for bucket in (self.work_bucket, self.delivery_bucket):
                self.store().ensure_bucket(bucket)
            admin = env | {"REELFORGE_NATS_USER": "admin", "REELFORGE_NATS_PASSWORD": NATS_PASSWORDS["admin"]}
            done = subprocess.run([find_binary("reelforge"), "bootstrap"], env=admin, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, f"reelforge bootstrap failed ({done.returncode}): {done.stdout}{done.stderr}"
        cmd = [find_binary("reelforge"), "worker", name]
        proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
        self.workers[name] = Worker(name, proc, port, log)
        return self.workers[name]

    def start_all(self, names: tuple[str, ...] = SERVICES) -> None:
        for name in names:
            self.start(name)
        self.wait_ready(names)

    def wait_ready(self, names: tuple[str, ...] = SERVICES, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            worker = self.workers[name]
            while (health := worker.health()) is None or not health["ok"]:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {worker.process.returncode}: {worker.log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready: {health}; {worker.log.read_text()[-3000:]}")
                time.sleep(0.2)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        worker = self.workers[name]
        worker.process.send_signal(sig)
        return worker.process.wait(timeout=120)

    def stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()

    def store(self) -> ObjectStore:
        from reelforge_shared.settings import CommonSettings

        return ObjectStore.from_settings(
            CommonSettings(
                s3_endpoint=self.s3_endpoint,
                s3_access_key=ACCESS_KEY,
                s3_secret_key=SECRET_KEY,
                nats_url=self.nats_url,
            )
        )

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def submit(self, board: dict[str, Any], idempotency_key: str | None = None) -> str:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(f"{self.gateway_url}/v1/jobs", json.dumps(board).encode(), headers)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310 - loopback
            return json.loads(r.read())["job_id"]


async def stream_events(nats_url: str, prefix: str, job_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every message stored in the stream (``(subject without prefix, body)``), oldest first; one job's if given."""
    nc = await nats.connect(nats_url.split(","), **OBSERVER)
    try:
        js = nc.jetstream()
        stream = prefix.upper().replace("-", "_")
        info = await js.stream_info(stream)
        last = info.state.last_seq
        found: list[tuple[str, dict[str, Any]]] = []
        if last:
            sub = await js.pull_subscribe(
                f"{prefix}.>", stream=stream, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30)
            )
            seq = 0
            while seq < last:
                for msg in await sub.fetch(500, timeout=5):
                    seq = msg.metadata.sequence.stream
                    await msg.ack()
                    try:
                        body = json.loads(msg.data)
                    except ValueError:
                        body = {}
                    if job_id is None or body.get("job_id") == job_id:
                        found.append((event_subject(msg.subject.split(".", 1)[1]), body))  # segment.failed.qa: segment.failed
            await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def settled_events(nats_url: str, prefix: str, job_id: str | None = None, timeout: float = 60) -> list[tuple[str, dict]]:
    """``stream_events``, asked again while the cluster settles: after a test killed a node, a read can meet the
    stream's or its consumer's leader moving (503, no responders, a timeout) for a few seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await stream_events(nats_url, prefix, job_id)
        except (nats.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def wait_for_event(nats_url: str, prefix: str, subject: str, job_id: str, timeout: float = 300) -> dict[str, Any]:
    """The first ``subject`` event of the job in the stream (already there, or when it arrives)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for got, body in await stream_events(nats_url, prefix, job_id):
                if got == subject or (subject == "*" and got):
                    return body
        except Exception:  # noqa: BLE001, S110 - NATS restarting under a fault test: ask again
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {subject} for {job_id} in {timeout} s")
        await asyncio.sleep(0.5)


async def check_job(system: System, job_id: str, segments: int, timeout: float = 300) -> list[tuple[str, dict[str, Any]]]:
    """What every fault test asserts, read from outside: the job completed, each segment delivered once,
    one film in the delivery bucket, one job.completed in the stream."""
    await wait_for_event(system.nats_url, system.prefix, "job.completed", job_id, timeout)
    events = await settled_events(system.nats_url, system.prefix, job_id)
    counts = Counter(subject for subject, _ in events)
    delivered = Counter(body["index"] for subject, body in events if subject == "segment.delivered")
    assert counts["job.completed"] == 1, counts
    assert "job.failed" not in counts, [b for s, b in events if s == "job.failed"]
    assert delivered == dict.fromkeys(range(1, segments + 1), 1), f"segment.delivered per index: {delivered}"
    [completed] = [body for subject, body in events if subject == "job.completed"]
    films = {k for k in system.store().list_keys(system.delivery_bucket, f"{job_id}/") if k.endswith(".mp4") and "/final" in k}
    crops = {k for k in completed["deliverables"].values() if k.endswith(".mp4")}  # crops of the one film
    assert films == {DeliveryKeys.film(job_id)} | crops, films
    return events


def log_lines(worker: Worker) -> list[dict[str, Any]]:
    lines = []
    for line in worker.log.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines
