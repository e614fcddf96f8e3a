"""Load benchmark: N segments through the real bus, S3, encoder, QA and uploader (and the gateway's ledger).

The generator is a FAST STAND-IN, named as such: it writes each segment's frames (small PNGs of a
moving gradient) without diffusion, through the same runner, keys and events as the real one, so
the figures measure everything but rendering. Everything else is the real thing: nats-server,
the S3 server, and `reelforge worker` processes for gateway, encoder, qa and uploader.

Prints segments per second, p50/p99 latency per stage (read from the stream's own timestamps),
and the counts that prove 0 lost and 0 duplicated. Not a test: run it by hand.

    .venv/bin/python bench/load.py --segments 1000 --per-job 10
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reelforge_shared.bus import Bus, bootstrap
from reelforge_shared.embedded import ACCESS_KEY, SECRET_KEY, start_nats, start_s3
from reelforge_shared.events import ModelInfo, SegmentGenerated, SegmentRequested
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, run_service
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from support.faults import System, s3_identities, storyboard

STAND_IN = ModelInfo(
    name="bench/fast-stand-in-generator", pipeline="none (frames written without diffusion)", random_weights=True
)
STAGES = [
    ("generate (stand-in)", "segment.requested", "segment.generated"),
    ("encode", "segment.generated", "segment.encoded"),
    ("qa", "segment.encoded", "segment.checked"),
    ("deliver", "segment.checked", "segment.delivered"),
    ("end to end", "segment.requested", "segment.delivered"),
]


def stand_in_generator(store: ObjectStore, bucket: str) -> Callable[[SegmentRequested, None], list]:
    """The fast stand-in: frames written straight to S3 (a gradient that moves), no model, no diffusion."""

    def handle(event: SegmentRequested, deps: None) -> list:
        spec, height, width = event.spec, event.spec.height, event.spec.width
        ramp = np.linspace(0, 255, width, dtype=np.float32)
        for i in range(spec.frames):
            row = (ramp + i * 8 + event.index * 13) % 256
            frame = np.repeat(np.stack([row, row[::-1], np.full_like(row, 96)], axis=-1)[None], height, axis=0)
            buf = io.BytesIO()
            Image.fromarray(frame.astype(np.uint8)).save(buf, format="PNG")
            store.put_bytes(bucket, Keys.frame(event.job_id, event.index, i, event.attempt), buf.getvalue(), "image/png")
        return [
            SegmentGenerated.follow(
                event,
                frames_prefix=Keys.frames(event.job_id, event.index, event.attempt),
                frame_count=spec.frames,
                fps=spec.fps,
                width=width,
                height=height,
                model=STAND_IN,
            )
        ]

    return handle


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def read_stream(settings: CommonSettings) -> list[tuple[str, dict, float]]:
    bus = await Bus.connect(settings)
    sub = await bus.js.pull_subscribe(f"{settings.subject_prefix}.>", stream=bus.stream)
    last = (await bus.js.stream_info(bus.stream)).state.last_seq
    found, seq = [], 0
    while seq < last:
        for msg in await sub.fetch(1000, timeout=10):
            seq = msg.metadata.sequence.stream
            await msg.ack()
            try:
                found.append((msg.subject.split(".", 1)[1], json.loads(msg.data), msg.metadata.timestamp.timestamp()))
            except ValueError:
                continue
    await bus.close()
    return found


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="reelforge-load-"))
    nats_server, s3 = start_nats(root / "nats"), start_s3(root / "s3", identities=s3_identities())
    prefix = "load" + uuid.uuid4().hex[:6]
    env = {"REELFORGE_ACK_WAIT_S": "30", "REELFORGE_ENCODER_PRESET": "ultrafast"}
    system = System(root, nats_server.url, s3.url, prefix, env)
    settings = CommonSettings(
        nats_url=nats_server.url,
        s3_endpoint=s3.url,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
        subject_prefix=prefix,
        work_bucket=system.work_bucket,
        delivery_bucket=system.delivery_bucket,
    )
    store = ObjectStore.from_settings(settings)
    for bucket in (settings.work_bucket, settings.delivery_bucket):
        store.ensure_bucket(bucket)
    stop = asyncio.Event()
    generator = Service(
        "generator",
        settings,
        [Route(SegmentRequested, stand_in_generator(store, settings.work_bucket), concurrency=args.generator_concurrency)],
        None,
    )
    await bootstrap(settings)  # the stream and job store, as a deploy's `reelforge bootstrap` makes them
    gen_task = asyncio.create_task(run_service(generator, stop))
    jobs = []
    try:
        system.start_all(("gateway", "encoder", "qa", "uploader"))
        from reelforge_gateway.submit import submit_job

        bus = await Bus.connect(settings)
        began = time.time()
        for n in range(args.segments // args.per_job):
            board = parse_storyboard(storyboard(f"load {n}", segments=args.per_job, frames=args.frames))
            jobs.append((await submit_job(board, bus=bus, store=store, bucket=settings.work_bucket)).job_id)
        await bus.close()
        print(f"submitted {len(jobs)} jobs x {args.per_job} segments in {time.time() - began:.1f} s", flush=True)
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            events = await read_stream(settings)
            completed = {b["job_id"] for s, b, _ in events if s == "job.completed"}
            failed = [b for s, b, _ in events if s in {"job.failed", "segment.failed"}]
            delivered = sum(1 for s, _, _ in events if s == "segment.delivered")
            print(
                f"  {time.time() - began:6.0f} s: {delivered} segments delivered, {len(completed)}/{len(jobs)} jobs complete, "
                f"{len(failed)} failures",
                flush=True,
            )
            if len(completed) == len(jobs) or failed:
                break
            await asyncio.sleep(10)
        events = await read_stream(settings)
    finally:
        stop.set()
        await asyncio.wait_for(gen_task, 30)
        system.stop_all()
        nats_server.stop()
        s3.stop()
    report(args, jobs, events)


def report(args: argparse.Namespace, jobs: list[str], events: list[tuple[str, dict, float]]) -> None:
    at: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    per_segment: Counter = Counter()
    for subject, body, ts in events:
        if "index" in body and subject.startswith("segment."):
            at[(body["job_id"], body["index"])].setdefault(subject, ts)
            if subject == "segment.delivered":
                per_segment[(body["job_id"], body["index"])] += 1
    expected = {(job, i) for job in jobs for i in range(1, args.per_job + 1)}
    completed = Counter(b["job_id"] for s, b, _ in events if s == "job.completed")
    lost = len(expected - set(per_segment))
    duplicated = sum(n - 1 for n in per_segment.values() if n > 1)
    first = min(t["segment.requested"] for t in at.values() if "segment.requested" in t)
    last = max(t["segment.delivered"] for t in at.values() if "segment.delivered" in t)
    print(
        f"\nload benchmark: {len(expected)} segments in {len(jobs)} jobs, {args.frames} frames of 64x36 each, "
        f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs"
    )
    span = last - first
    print(f"throughput: {len(per_segment) / span:.2f} segments/s (first request -> last delivery: {span:.1f} s)")
    print("| stage | p50 s | p99 s | max s |\n| --- | --- | --- | --- |")
    for name, start, end in STAGES:
        spans = [t[end] - t[start] for t in at.values() if start in t and end in t]
        print(f"| {name} | {statistics.median(spans):.2f} | {percentile(spans, 99):.2f} | {max(spans):.2f} |")
    print(f"segments expected {len(expected)}, delivered {len(per_segment)}, lost {lost}, duplicated {duplicated}")
    print(f"jobs {len(jobs)}, job.completed {sum(completed.values())} ({sum(1 for n in completed.values() if n > 1)} jobs twice)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=1000)
    parser.add_argument("--per-job", type=int, default=10)
    parser.add_argument("--frames", type=int, default=2, help="frames per segment (64x36)")
    parser.add_argument("--generator-concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=3600)
    asyncio.run(main(parser.parse_args()))
