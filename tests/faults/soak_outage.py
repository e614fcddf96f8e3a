"""Soak (not in CI): S3 down for most of REELFORGE_OUTAGE_TOLERANCE_S mid-job, and the job still completes.

    .venv/bin/python tests/faults/soak_outage.py                 # S3 down 540 s of the default 600 s tolerance
    .venv/bin/python tests/faults/soak_outage.py --down 660      # past it: the job fails, the error names the outage,
                                                                 # and the same storyboard resubmitted resumes it

The five services run as `reelforge worker` processes (tests/support/faults.py) against a real
nats-server and S3 server. Prints the outage, how long the job took after S3 came back, each
worker's /healthz during the outage and its reelforge_outage_seconds_total. A job that failed is
resubmitted with its Idempotency-Key: it resumes from what is stored (the time to complete is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from reelforge_shared.embedded import start_nats, start_s3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: tests/ holds the support package
from support.faults import (
    API_TOKEN,
    SERVICES,
    System,
    check_job,
    s3_identities,
    storyboard,
    stream_events,
    wait_for_event,
)


def outage_seconds(system: System, name: str) -> float:
    try:
        url = f"http://127.0.0.1:{system.workers[name].health_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return float("nan")
    return sum(float(v) for v in re.findall(r'^reelforge_outage_seconds_total\{[^}]*dependency="s3"[^}]*\} (\S+)$', text, re.M))


def job_status(system: System, job: str, timeout: float) -> str:
    """The job's status once it is finished (completed, failed, cancelled), from the jobs API."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{system.gateway_url}/v1/jobs/{job}", headers={"Authorization": f"Bearer {API_TOKEN}"})  # noqa: S310 - loopback
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - loopback
            status = json.loads(r.read())["status"]
        if status in {"completed", "failed", "cancelled"}:
            return status
        time.sleep(1)
    return "unfinished"


def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="reelforge-soak-"))
    nats_server, s3 = start_nats(root / "nats"), start_s3(root / "s3", identities=s3_identities())
    env = {"REELFORGE_OUTAGE_TOLERANCE_S": str(args.tolerance)}
    system = System(root, nats_server.url, s3.url, "soak" + uuid.uuid4().hex[:6], env)
    try:
        system.start_all()
        board, key = storyboard("soak", segments=args.segments, frames=6), "soak-" + uuid.uuid4().hex
        job = system.submit(board, idempotency_key=key)
        asyncio.run(wait_for_event(system.nats_url, system.prefix, "segment.generated", job))
        s3.kill()
        down_at = time.monotonic()
        print(f"S3 killed mid-job ({job}); down for {args.down:.0f} s of a {args.tolerance:.0f} s tolerance", flush=True)
        while (elapsed := time.monotonic() - down_at) < args.down:
            health = {n: (system.workers[n].health() or {}).get("services", [{}])[0].get("down", {}) for n in SERVICES}
            reporting = sorted(n for n, d in health.items() if "s3" in d)
            print(f"  {elapsed:5.0f} s  workers reporting s3 down: {reporting}", flush=True)
            time.sleep(min(60, args.down - elapsed))
        s3.restart()
        back_at = time.monotonic()
        print(f"S3 back after {back_at - down_at:.0f} s", flush=True)
        status = job_status(system, job, timeout=args.down + 600)
        if status == "completed":
            asyncio.run(check_job(system, job, args.segments))
            print(f"job complete {time.monotonic() - back_at:.1f} s after S3 came back: one film, each segment delivered once")
        else:
            events = asyncio.run(stream_events(system.nats_url, system.prefix, job))
            errors = [b.get("error") for s, b in events if s.endswith("failed")]
            print(f"job {status} {time.monotonic() - back_at:.1f} s after S3 came back; failures: {errors[:3]}", flush=True)
            resubmitted = time.monotonic()
            assert system.submit(board, idempotency_key=key) == job
            asyncio.run(check_job(system, job, args.segments, timeout=600))
            print(
                f"resubmitted with its Idempotency-Key: the same job resumed and completed "
                f"{time.monotonic() - resubmitted:.1f} s later: one film, each segment delivered once"
            )
        for name in SERVICES:
            print(f"  {name:9s} reelforge_outage_seconds_total{{dependency=s3}} = {outage_seconds(system, name):.0f}")
    finally:
        system.stop_all()
        nats_server.stop()
        s3.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--down", type=float, default=540.0, help="seconds S3 stays down")
    parser.add_argument("--tolerance", type=float, default=600.0, help="REELFORGE_OUTAGE_TOLERANCE_S for the workers")
    parser.add_argument("--segments", type=int, default=3)
    main(parser.parse_args())
