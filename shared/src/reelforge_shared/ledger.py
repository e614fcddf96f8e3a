"""The job ledger: the one place a job's state lives (a JetStream KV bucket, compare-and-set).

Every reader asks the ledger: the gateway's jobs API and its server-sent events, the CLI's progress
bars (`reelforge run`), the cancel check of every service, re-render. Nothing else keeps a copy.

Writes are revision-checked: :meth:`Ledger.update` reads the record, applies a change, and writes
it back only if nobody wrote in between (else it reads again and retries), so any number of
observers and API replicas can write one job together.

The ledger is advanced by an OBSERVER (:func:`observer_routes`): routes on every job event that fold
the event into the record and never do a job's work. One decision is taken there because only the
ledger can take it race-free: the update that sees the last segment delivered publishes
``film.requested`` (once per film version; a redelivery of that same update re-publishes the same
version, which the bus drops by its Nats-Msg-Id).

Each change that alters a record appends a :class:`Change` whose ``id`` counts from 1: the SSE
event id. The list of changes is replayable from the start because it is part of the record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from reelforge_shared.events import (
    Event,
    FilmChecked,
    FilmEncoded,
    FilmRequested,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    RenderSpec,
    SegmentChecked,
    SegmentDelivered,
    SegmentEncoded,
    SegmentFailed,
    SegmentGenerated,
    SegmentRequested,
)
from reelforge_shared.metrics import JOB_FINISH_SECONDS, JOB_SECONDS, JOB_STALLED_SECONDS, JOBS

BUCKET = "jobs"
JobStatus = Literal["queued", "running", "film_encoding", "film_checking", "delivering", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
SegmentStage = Literal["queued", "generated", "encoded", "checked", "delivered", "failed"]
SEGMENT_STAGES: tuple[str, ...] = ("queued", "generated", "encoded", "checked", "delivered")
_RANK = {"queued": 0, "generated": 1, "encoded": 2, "checked": 3, "delivered": 4, "failed": 5}
_STAGE_OF: dict[type[Event], SegmentStage] = {
    SegmentRequested: "queued",
    SegmentGenerated: "generated",
    SegmentEncoded: "encoded",
    SegmentChecked: "checked",
    SegmentDelivered: "delivered",
    SegmentFailed: "failed",
}
_FILM_STATUS: dict[type[Event], str] = {FilmRequested: "film_encoding", FilmEncoded: "film_checking", FilmChecked: "delivering"}
OBSERVED_EVENTS: tuple[type[Event], ...] = (
    JobSubmitted,
    *_STAGE_OF,
    FilmRequested,
    FilmEncoded,
    FilmChecked,
    JobCompleted,
    JobFailed,
    JobCancelled,
)


def _now() -> datetime:
    return datetime.now(UTC)


class SegmentRecord(BaseModel):
    index: int
    id: str
    stage: SegmentStage = "queued"
    attempt: int = 1
    qa_passed: bool | None = None
    qa_scores: dict[str, float] = Field(default_factory=dict, description="gate -> score of the checked attempt")
    qa_failed_gates: list[str] = Field(default_factory=list)
    video_key: str | None = Field(None, description="work-bucket key of the attempt's MP4")
    delivery_key: str | None = None
    error: str | None = None
    model: str | None = Field(None, description="model asked for (unset: the generator's default)")
    spec: RenderSpec | None = Field(None, description="what the current attempt renders (a resume requests it again)")
    resume: int = Field(0, description="the job's resume that last queued this segment again (0: never)")
    reached: dict[str, datetime] = Field(default_factory=dict, description="stage -> when the current attempt reached it")

    def stage_seconds(self) -> dict[str, float]:
        """Seconds each stage took for this attempt (from the stage before it)."""
        out = {}
        for before, stage in zip(SEGMENT_STAGES, SEGMENT_STAGES[1:], strict=False):
            if before in self.reached and stage in self.reached:
                out[stage] = (self.reached[stage] - self.reached[before]).total_seconds()
        return out


class Change(BaseModel):
    """One change of a job's record: what the progress stream sends."""

    id: int = Field(description="1, 2, 3 ... per job: the SSE event id")
    at: datetime
    kind: str = Field(description="the event subject or API action that caused it", examples=["segment.encoded"])
    status: JobStatus
    index: int | None = None
    stage: str | None = None
    detail: str | None = None


class JobRecord(BaseModel):
    job_id: str
    title: str = ""
    status: JobStatus = "queued"
    segment_count: int = 0
    segments: dict[int, SegmentRecord] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    owner: str | None = Field(None, description="name of the API token that submitted it")
    webhook_url: str | None = None
    idempotency_key: str | None = None
    body_sha256: str | None = Field(None, description="hash of the submitted body (Idempotency-Key checks)")
    film_version: int = Field(0, description="versions of the film requested so far (a re-render adds one)")
    film_wanted: bool = Field(True, description="a film (or a new version) is to be requested once every segment is delivered")
    film_key: str | None = Field(None, description="delivery key of the latest film")
    films: dict[int, str] = Field(default_factory=dict, description="film version -> delivery key; earlier versions stay")
    film_url: str | None = None
    delivery_bucket: str | None = None
    report_key: str | None = None
    report_html_key: str | None = None
    deliverables: dict[str, str] = Field(default_factory=dict)
    qa_failed_segments: list[int] = Field(default_factory=list)
    duration_s: float | None = None
    error: str | None = None
    resume: int = Field(0, description="times the job was resumed after it failed (a resubmission with its Idempotency-Key)")
    changes: list[Change] = Field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def change_id(self) -> int:
        return self.changes[-1].id if self.changes else 0

    def all_delivered(self) -> bool:
        return self.segment_count > 0 and all(
            (s := self.segments.get(n)) is not None and s.stage == "delivered" for n in range(1, self.segment_count + 1)
        )

    def record(self, kind: str, index: int | None = None, stage: str | None = None, detail: str | None = None) -> None:
        """Append a change (call after altering the record)."""
        self.updated_at = _now()
        self.changes.append(
            Change(
                id=self.change_id + 1, at=self.updated_at, kind=kind, status=self.status, index=index, stage=stage, detail=detail
            )
        )

    def film_request(self) -> FilmRequested:
        return FilmRequested(job_id=self.job_id, segment_count=self.segment_count, version=self.film_version, resume=self.resume)


def fold(record: JobRecord, event: Event) -> list[Event]:
    """Apply one event to the record; return the events this transition publishes (``film.requested``).

    Pure: no I/O. A repeated event changes nothing and appends no change, except that a repeat of the
    delivery that requested the film returns the same request again (the bus drops the copy).
    """
    before = record.model_dump(exclude={"updated_at", "changes"})
    kind, index, stage = event.subject, getattr(event, "index", None), None
    if isinstance(event, JobSubmitted):
        record.title, record.segment_count = event.title, event.segment_count
    elif (stage := _STAGE_OF.get(type(event))) is not None:
        _fold_segment(record, event, stage)
    elif (film_status := _FILM_STATUS.get(type(event))) is not None:
        if not record.terminal and event.version == record.film_version:  # type: ignore[attr-defined]
            record.status = film_status  # type: ignore[assignment]
    elif isinstance(event, JobCompleted):
        record.films[event.version] = event.film_key
        if event.version == record.film_version:  # an earlier version finishing late changes nothing else
            if record.status != "cancelled":
                record.status = "completed"
            record.film_key, record.film_url, record.report_key = event.film_key, event.film_url, event.report_key
            record.delivery_bucket, record.report_html_key = event.delivery_bucket, event.report_html_key
            record.deliverables = event.deliverables
            record.qa_failed_segments, record.duration_s = event.qa_failed_segments, event.duration_s
    elif isinstance(event, JobFailed):
        if not record.terminal and event.resume >= record.resume:  # a failure from before a resume is over
            record.status, record.error = "failed", f"{event.stage}: {event.error}"
    elif isinstance(event, JobCancelled) and record.status not in TERMINAL:
        record.status = "cancelled"
    publish: list[Event] = []
    if record.film_wanted and record.all_delivered() and not record.terminal:
        record.film_wanted, record.film_version = False, record.film_version + 1
        publish.append(record.film_request())
    elif isinstance(event, SegmentDelivered) and record.status == "film_encoding" and record.all_delivered():
        publish.append(record.film_request())  # a redelivery after a crash between the write and the publish
    if record.model_dump(exclude={"updated_at", "changes"}) != before:
        if record.status == "queued" and isinstance(event, SegmentGenerated | SegmentEncoded | SegmentChecked | SegmentDelivered):
            record.status = "running"
        record.record(kind, index, stage, getattr(event, "error", None))
    return publish


def _fold_segment(record: JobRecord, event: Any, stage: SegmentStage) -> None:
    seg = record.segments.setdefault(event.index, SegmentRecord(index=event.index, id=event.segment_id))
    if isinstance(event, SegmentFailed) and event.resume < seg.resume:
        return  # the failure a resume already answered by queueing the segment again
    # Stages only move forward, except that a new attempt (regeneration, re-render) starts the segment over.
    if event.attempt > seg.attempt:
        seg.attempt, seg.stage, seg.reached, seg.error = event.attempt, stage, {}, None
        seg.qa_passed, seg.qa_scores, seg.qa_failed_gates, seg.delivery_key = None, {}, [], None
    elif event.attempt < seg.attempt or _RANK[stage] < _RANK[seg.stage]:
        return
    seg.stage = stage
    seg.reached.setdefault(stage, event.occurred_at)
    if isinstance(event, SegmentRequested):
        seg.model, seg.spec = event.model, event.spec
    if isinstance(event, SegmentEncoded | SegmentChecked | SegmentDelivered):
        seg.video_key = event.video_key
    if isinstance(event, SegmentChecked | SegmentDelivered):
        seg.qa_passed = event.qa.passed
        seg.qa_scores = {name: gate.score for name, gate in event.qa.gates.items()}
        seg.qa_failed_gates = sorted(name for name, gate in event.qa.gates.items() if not gate.passed)
    if isinstance(event, SegmentDelivered):
        seg.delivery_key = event.delivery_key
    if isinstance(event, SegmentFailed):
        seg.error = f"{event.stage}: {event.error}"
        if not record.terminal:
            record.status, record.error = "failed", f"segment {event.index} ({event.segment_id}) failed in {event.stage}"


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
            return fold(record, event), record.terminal and not was_terminal

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

        def change(record: JobRecord) -> bool:
            if record.terminal:
                return False
            record.status = "cancelled"
            record.record("job.cancelled", detail=f"by {by}" if by else None)
            return True

        return await self.update(job_id, change)

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

    async def follow(self, job_id: str, heartbeat_s: float = 15.0) -> AsyncIterator[JobRecord | None]:
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


def observer_routes(ledger: Callable[[], Ledger | None]) -> list[Any]:
    """The ledger's observer: one route per job event, folding it into the record.

    An observer: it records what happened and takes no part in the job's work (its only output is
    the film request the last delivery triggers). ``ledger`` returns the open ledger (the service's,
    opened before any route runs).
    """
    from reelforge_shared.runner import Route

    async def observe(event: Event, _deps: Any) -> list[Event]:
        opened = ledger()
        if opened is None:
            raise RuntimeError("the job ledger is not open")
        _, publish = await opened.apply(event)
        return publish

    return [Route(event, observe, observer=True) for event in OBSERVED_EVENTS]
