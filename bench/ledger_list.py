"""Listing jobs from the job store's index: time per page at 100, 1,000 and 5,000 stored jobs.

Jobs are stored as the gateway stores them (``Ledger.create``: head, first change, index entry) on
an embedded nats-server, all finished but one in 250; each size adds jobs to the same store. Then
``list_jobs`` is timed, as the
gateway's ``GET /v1/jobs`` calls it: one owner's first page of 20 (the jobs spread over ``--owners``
owners), the admin's first page over every owner, both again filtered by status (``?status=completed``,
what nearly every stored job is), ``active()`` (the unfinished heads read for
queue positions), ``eta_sample()`` (what every job view reads for its ETA) and ``export_metrics()``
(the gateway's /metrics poll). Before the split every listing read every stored record.

    .venv/bin/python bench/ledger_list.py [--sizes 100,1000,5000] [--owners 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from reelforge_shared.bus import Bus, bootstrap
from reelforge_shared.embedded import start_nats
from reelforge_shared.jobs import JobRecord, Ledger
from reelforge_shared.settings import CommonSettings


async def _timed(repeat: int, call: Callable[[], Awaitable[object]]) -> float:
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


async def main(sizes: list[int], owners: int, repeat: int) -> None:
    server = start_nats(Path(tempfile.mkdtemp(prefix="ledger-bench-")))
    try:
        settings = CommonSettings(nats_url=server.url, subject_prefix="bench")
        await bootstrap(settings)
        bus = await Bus.connect(settings)
        ledger = await Ledger.open(bus)
        stored = 0
        print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
        print(
            "| stored jobs | one owner's page of 20 | admin's page of 20 | one owner's, ?status=completed "
            "| admin's, ?status=completed | active() | eta_sample() | export_metrics() |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in sizes:
            while stored < size:
                batch = [  # as a store holds them: nearly all finished (one in 250 in the queue)
                    ledger.create(
                        JobRecord(
                            job_id=f"j-{n:06d}",
                            owner=f"owner{n % owners}",
                            segment_count=4,
                            status="queued" if n % 250 == 0 else "completed",
                        )
                    )
                    for n in range(stored, min(size, stored + 50))
                ]
                await asyncio.gather(*batch)
                stored += len(batch)
            one = await _timed(repeat, lambda: ledger.list_jobs(["owner0"], limit=20))
            admin = await _timed(repeat, lambda: ledger.list_jobs(None, limit=20))
            one_done = await _timed(repeat, lambda: ledger.list_jobs(["owner0"], "completed", limit=20))
            admin_done = await _timed(repeat, lambda: ledger.list_jobs(None, "completed", limit=20))
            active = await _timed(repeat, ledger.active)
            eta = await _timed(repeat, ledger.eta_sample)
            metrics = await _timed(repeat, ledger.export_metrics)
            cells = " | ".join(f"{s * 1000:,.0f} ms" for s in (one, admin, one_done, admin_done, active, eta, metrics))
            print(f"| {size:,} | {cells} |", flush=True)
        await bus.close()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--owners", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.owners, args.repeat))
