"""The job store: job records in a JetStream KV bucket, every write compare-and-set.

Every reader asks the store: the gateway's jobs API and its server-sent events, the CLI's progress
bars (`reelforge run`), the cancel check of every service, re-render. Nothing else keeps a copy.

Writes are revision-checked: :meth:`Ledger.update` reads the record, applies a change (one of the
pure functions of :mod:`reelforge_shared.jobs.transitions`), and writes it back only if nobody wrote
in between (else it reads again and retries), so any number of observers and API replicas can write
one job together.

Each change that alters a record appends a :class:`Change` whose ``id`` counts from 1: the SSE
event id. The list of changes is replayable from the start because it is part of the record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, get_args

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from reelforge_shared.events import Event
from reelforge_shared.jobs import transitions
from reelforge_shared.jobs.record import JobRecord, JobStatus
from reelforge_shared.metrics import JOB_FINISH_SECONDS, JOB_SECONDS, JOB_STALLED_SECONDS, JOBS

BUCKET = "jobs"


def _now() -> datetime:
    return datetime.now(UTC)


def observe_finished(record: JobRecord, at: datetime) -> None:
    """End-to-end latency of a finished job and, for a completed one, the time from its last delivery."""
    JOB_SECONDS.labels(record.status).observe(max(0.0, (at - record.created_at).total_seconds()))
    delivered = [s.reached["delivered"] for s in record.segments.values() if "delivered" in s.reached]
    if record.status == "completed" and delivered:
        JOB_FINISH_SECONDS.observe(max(0.0, (at - max(delivered)).total_seconds()))


class LedgerConflict(RuntimeError):
    """The record kept changing under every retry."""


class Ledger:
    """Read and write job records in the KV bucket; every write is compare-and-set on the revision."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, bus: Any) -> Ledger:
        return cls(await bus.key_value(BUCKET))

    async def get(self, job_id: str) -> JobRecord | None:
        record, _ = await self._read(job_id)
        return record

    async def _read(self, job_id: str) -> tuple[JobRecord | None, int | None]:
        try:
            entry = await self.kv.get(job_id)
        except KeyNotFoundError:
            return None, None
        if not entry.value:
            return None, None
        return JobRecord.model_validate_json(entry.value), entry.revision

    async def create(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """Store a new record; (the stored record, True) or (the one already there, False)."""
        if not record.changes:
            record.record("job.created")
        try:
            await self.kv.create(record.job_id, record.model_dump_json().encode())
            return record, True
        except KeyWrongLastSequenceError:
            existing = await self.get(record.job_id)
            if existing is None:  # deleted in between: rare enough to surface
                raise LedgerConflict(f"job {record.job_id}: created and removed concurrently") from None
            return existing, False

    async def update(
        self, job_id: str, change: Callable[[JobRecord], Any], *, create: bool = False, attempts: int = 50
    ) -> tuple[JobRecord | None, Any]:
        """Compare-and-set: apply ``change`` to a fresh read until the write lands; (record, change's result).

        ``change`` may run several times (once per conflict), so it must only alter the record it is
        given. It is written back only if it altered the change list. A missing record is created
        first when ``create`` is set, else (None, None) is returned.
        """
        for _ in range(attempts):
            record, revision = await self._read(job_id)
            if record is None:
                if not create:
                    return None, None
                record = JobRecord(job_id=job_id)
            changes = record.change_id
            result = change(record)
            if record.change_id == changes:
                return record, result
            payload = record.model_dump_json().encode()
            try:
                if revision is None:
                    await self.kv.create(job_id, payload)
                else:
                    await self.kv.update(job_id, payload, last=revision)
                return record, result
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0)  # another writer got there first: read again
        raise LedgerConflict(f"job {job_id}: the record kept changing under {attempts} updates")

    async def apply(self, event: Event) -> tuple[JobRecord, list[Event]]:
        def change(record: JobRecord) -> tuple[list[Event], bool]:
            was_terminal = record.terminal
            return transitions.fold(record, event), record.terminal and not was_terminal

        record, (publish, finished) = await self.update(event.job_id, change, create=True)
        assert record is not None  # noqa: S101 - create=True always yields a record
        if finished:  # the one update that ended the job (compare-and-set: one writer wins)
            observe_finished(record, event.occurred_at)
        return record, publish

    async def export_metrics(self) -> None:
        """Jobs by state and the longest time a running job went without progress, for /metrics."""
        records = await self.all()
        counts = dict.fromkeys(get_args(JobStatus), 0)
        stalled, now = 0.0, _now()
        for record in records:
            counts[record.status] += 1
            if not record.terminal:
                stalled = max(stalled, (now - record.updated_at).total_seconds())
        for state, count in counts.items():
            JOBS.labels(state).set(count)
        JOB_STALLED_SECONDS.set(stalled)

    async def cancel(self, job_id: str, by: str | None = None) -> tuple[JobRecord | None, bool]:
        """Mark the job cancelled (idempotent); (record, True when this call cancelled it)."""

        return await self.update(job_id, lambda record: transitions.cancel(record, by))

    async def is_cancelled(self, job_id: str) -> bool:
        record = await self.get(job_id)
        return record is not None and record.status == "cancelled"

    async def job_ids(self) -> list[str]:
        try:
            return await self.kv.keys()
        except NoKeysError:
            return []

    async def all(self) -> list[JobRecord]:
        """Every record, oldest first (the jobs listing, queue positions and ETAs read this)."""
        records = [r for job in await self.job_ids() if (r := await self.get(job)) is not None]
        return sorted(records, key=lambda r: (r.created_at, r.job_id))

    async def watch(self, job_id: str, heartbeat_s: float = 15.0) -> AsyncIterator[JobRecord | None]:
        """Yield the record now and after every write; None when ``heartbeat_s`` passes without one."""
        watcher = await self.kv.watch(job_id)
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=heartbeat_s)
                except Exception:  # noqa: BLE001 - nats raises its own TimeoutError type
                    yield None
                    continue
                if entry is None or not entry.value:
                    continue  # the "no more history" marker, or a delete
                yield JobRecord.model_validate_json(entry.value)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()


class CancelCheck:
    """A cheap, thread-safe "is this job cancelled?" for work that runs in a worker thread (the generator).

    Bound to the ledger and the event loop once the bus is up (:meth:`bind`); until then, and for a
    job the ledger does not know, the answer is no. Answers are cached for ``ttl_s`` per job.
    """

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ledger: Ledger | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, bool]] = {}

    def bind(self, ledger: Ledger, loop: asyncio.AbstractEventLoop) -> None:
        self.ledger, self.loop = ledger, loop

    async def cancelled(self, job_id: str) -> bool:
        now = asyncio.get_running_loop().time()
        if (hit := self._cache.get(job_id)) and now - hit[0] < self.ttl_s:
            return hit[1]
        answer = self.ledger is not None and await self.ledger.is_cancelled(job_id)
        self._cache[job_id] = (now, answer)
        return answer

    def __call__(self, job_id: str) -> bool:
        """From a worker thread: ask the ledger on the service's loop."""
        if self.ledger is None or self.loop is None:
            return False
        return asyncio.run_coroutine_threadsafe(self.cancelled(job_id), self.loop).result(timeout=10)
