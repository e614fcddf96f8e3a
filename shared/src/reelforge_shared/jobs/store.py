"""The job store: job records in a JetStream KV bucket, every write compare-and-set on the job's head.

Every reader asks the store: the gateway's jobs API and its server-sent events, the CLI's progress
bars (`reelforge run`), the cancel check of every service, re-render. Nothing else keeps a copy.

Layout (keys of the bucket ``{STREAM}_jobs``; no value grows with the number of events, and with the
number of segments only by one letter each in the head's stage summary):

- ``job.{job}``: the head (status, owner, counts, film version, the stage summary), plus the intent
  of its last write: the patches of the segments and the changes that write made.
- ``seg.{job}.{n}``: one segment (its spec, attempt, QA verdict, timings).
- ``chg.{job}.{id}``: one change (the SSE event ``id``), replayable from 1.
- ``sts.{owner}.{status}.{created ms}.{job}``: the status index (empty values), one entry per job, created when
  the job reaches the status and removed without a marker when it leaves it (or is swept): a listing by status
  reads its page from the stream's end (so the latest to reach the status come first) and counts it with a
  filtered consumer, at the page's cost, never the history's.
- ``new.{owner}.{created ms}.{job}``: the created index, written once when the job is first listed and
  removed without a marker by the sweep: a listing without a status reads its page the same way.
- ``idx.{owner}.{status}.{created ms}.{job}``: the status index of stores from before 2026-12-06 (a key put again
  on every status change, removed with a marker): moved to ``sts`` and purged by the first upkeep.
- ``end.{finished ms}.{job}``: finished jobs by when they finished (the retention sweep reads these).
- ``cap.{owner}``: the owner's jobs in flight (the submission cap, compare-and-set).
- ``rate.{token}``, ``sse.{token}``: the gateway's per-token request window and open event streams
  (``reelforge_gateway.rates``, ``reelforge_gateway.streams``), beside the cap so that all hold across replicas.
- ``out.{job}``: the job's head holds events not yet published (its outbox), for :meth:`Ledger.upkeep`.
- ``recent``: the ids of the latest 20 completed jobs, newest first (the ETA's sample; a job view reads no history).
- ``pub.{job}``: a submission or a resume owes the bus its events (too many, each with its spec, for
  the head to hold): written before the ledger write, purged once they are out; the upkeep publishes
  them again (:meth:`Ledger.republish_owed`) from the record and the stored storyboard.

Lifecycle: a finished job (completed, failed, cancelled) is deleted whole (head, segments, changes,
index entries) by :meth:`Ledger.sweep` once ``REELFORGE_JOB_RETENTION`` has passed since it finished;
the gateway runs the sweep, and deletes the job's derived renditions with it. Its other objects in the buckets are
not touched: see docs/operations.md, "The job store".

A write is one compare-and-set of the head: the transition (a pure function of
:mod:`reelforge_shared.jobs.transitions`) runs on the head and the segments it needs, and the head is
written with the segments' patches, the new changes and the events the change implies (its outbox:
``job.cancelled``, a re-render's ``segment.requested``) in it. Those are then copied to their own keys
and published
(write-if-newer, by the change id that made them), by the writer at once and again by the next writer
before its own write, so one compare-and-set decides everything and a crash between the two leaves
nothing half-done: readers lay the head's patches over the segments they read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import structlog
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from reelforge_shared.errors import PermanentError
from reelforge_shared.events import EVENTS_BY_SUBJECT, Event, SegmentRequested
from reelforge_shared.jobs import transitions
from reelforge_shared.jobs.record import LOCAL_OWNER, TERMINAL, Change, JobRecord, JobStatus, SegmentRecord
from reelforge_shared.metrics import JOB_FINISH_SECONDS, JOB_SECONDS, JOB_STALLED_SECONDS, JOBS
from reelforge_shared.specs import render_spec
from reelforge_shared.storyboard import Storyboard

log = structlog.get_logger("reelforge.jobs")
BUCKET = "jobs"
ACTIVE: tuple[str, ...] = tuple(s for s in get_args(JobStatus) if s not in TERMINAL)
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")
HEADROOM = 1024  # bytes left under max_payload for the message's headers and the head's own growth
CREATED_INDEXED = "meta.created_index"  # set once every job stored before the created index has its entry
STATUS_INDEXED = "meta.status_index"  # set once every job of the old status index (idx.) has its entry in sts.
RECENT_KEY, RECENT = "recent", 20  # the latest completed jobs, whose stage times the ETA is judged by
# A watcher's consumer is removed by the server this long after its reader stopped (nats-py's default is 5 minutes:
# a client polling a job left one behind per index read until the server refused more, err 10026).
WATCH_GONE_S = 2.0
OWED_GRACE = timedelta(seconds=60)  # a writer's own time to publish what it owes before the upkeep does it


def _now() -> datetime:
    return datetime.now(UTC)


def token(name: str) -> str:
    """A name as one KV key token: as it is when safe, else ``=`` and its hex."""
    return name if _SAFE.fullmatch(name) else "=" + name.encode().hex()


def head_key(job_id: str) -> str:
    return f"job.{job_id}"


def segment_key(job_id: str, index: int) -> str:
    return f"seg.{job_id}.{index}"


def change_key(job_id: str, change: int) -> str:
    return f"chg.{job_id}.{change}"


def status_key(record: JobRecord, status: str | None = None) -> str:
    """The job's entry in the status index (under ``status``, else its own)."""
    created = int(record.created_at.timestamp() * 1000)
    return f"sts.{token(record.owner or LOCAL_OWNER)}.{status or record.status}.{created:013d}.{record.job_id}"


def index_key(record: JobRecord, status: str | None = None) -> str:
    """The job's entry in the status index of stores from before 2026-12-06 (read once, by :meth:`Ledger.index_statuses`)."""
    return "idx." + status_key(record, status).split(".", 1)[1]


def created_key(record: JobRecord) -> str:
    created = int(record.created_at.timestamp() * 1000)
    return f"new.{token(record.owner or LOCAL_OWNER)}.{created:013d}.{record.job_id}"


def _says(head: JobRecord | None, status: str | None) -> bool:
    return head is not None and head.status == status


def observe_finished(record: JobRecord, at: datetime) -> None:
    """End-to-end latency of a finished job and, for a completed one, the time from its last delivery."""
    JOB_SECONDS.labels(record.status).observe(max(0.0, (at - record.created_at).total_seconds()))
    if record.status == "completed" and record.last_delivery_at is not None:
        JOB_FINISH_SECONDS.observe(max(0.0, (at - record.last_delivery_at).total_seconds()))


class LedgerConflict(RuntimeError):
    """The record kept changing under every retry."""


class JobTooLarge(PermanentError):
    """A job whose head, one of its segments or one of its events would not fit the server's ``max_payload``."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} would be {size} bytes; the NATS server takes at most {limit} bytes per message (max_payload)")
        self.what, self.size, self.limit = what, size, limit


class Intent:
    """What the head's last write still has to do outside it: segment patches and changes to copy, events to publish."""

    def __init__(
        self,
        patches: dict[int, dict[str, Any]] | None = None,
        changes: list[Change] | None = None,
        events: list[Event] | None = None,
        sent: bool = False,
    ) -> None:
        self.patches = patches or {}
        self.changes = changes or []
        self.events = events or []
        self.sent = sent or not self.events


def _dump_head(record: JobRecord, intent: Intent, listed: str | None) -> bytes:
    head = record.model_dump(mode="json", exclude={"segments", "changes"})
    head["_patches"] = {str(i): p for i, p in intent.patches.items()}
    head["_changes"] = [c.model_dump(mode="json") for c in intent.changes]
    head["_events"] = [{"subject": e.subject, "event": e.model_dump(mode="json")} for e in intent.events]
    head["_sent"] = intent.sent
    head["_listed"] = listed
    return json.dumps(head, separators=(",", ":")).encode()


def _load_head(value: bytes) -> tuple[JobRecord, Intent, str | None]:
    raw = json.loads(value)
    patches = {int(i): p for i, p in raw.pop("_patches", {}).items()}
    changes = [Change.model_validate(c) for c in raw.pop("_changes", [])]
    events = [EVENTS_BY_SUBJECT[e["subject"]].model_validate(e["event"]) for e in raw.pop("_events", [])]
    sent = raw.pop("_sent", True)
    listed = raw.pop("_listed", None)
    return JobRecord.model_validate(raw), Intent(patches, changes, events, sent), listed


def _patch(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    if before is None:
        return after
    return {k: v for k, v in after.items() if before.get(k) != v} | {"index": after["index"], "version": after["version"]}


class Ledger:
    """Read and write job records in the KV bucket; every write is compare-and-set on the head's revision."""

    def __init__(self, kv: KeyValue, *, js: JetStreamContext, max_payload: int = 1024 * 1024, bus: Any = None) -> None:
        self.kv = kv
        self.js = js  # the listing's counts, stream reads and purges on the bucket's stream (:meth:`_subject_of`)
        self.max_payload = max_payload
        self.bus = bus  # publishes the outbox; None: events wait in the head for a store that has one
        self._bucket_stream: tuple[str, str] | None = None

    @classmethod
    async def open(cls, bus: Any) -> Ledger:
        """The store over the bus's bucket, sized by the ``max_payload`` the server announced on connect."""
        return cls(await bus.key_value(BUCKET), js=bus.js, max_payload=bus.nc.max_payload, bus=bus)

    # -- reading -------------------------------------------------------------------------------

    async def _value(self, key: str) -> tuple[bytes | None, int | None]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None, None
        return (entry.value or None), entry.revision

    async def _read_head(self, job_id: str) -> tuple[JobRecord | None, Intent, str | None, int | None]:
        value, revision = await self._value(head_key(job_id))
        if value is None:
            return None, Intent(), None, None
        record, intent, listed = _load_head(value)
        return record, intent, listed, revision

    async def _segments(self, job_id: str, indexes: Iterable[int], intent: Intent) -> dict[int, SegmentRecord]:
        indexes = list(indexes)
        values = await asyncio.gather(*(self._value(segment_key(job_id, n)) for n in indexes))
        out: dict[int, SegmentRecord] = {}
        for n, (value, _) in zip(indexes, values, strict=True):
            stored = json.loads(value) if value else None
            patch = intent.patches.get(n)
            if patch is not None and (stored is None or stored.get("version", 0) < patch["version"]):
                stored = (stored or {}) | patch
            if stored is not None:
                out[n] = SegmentRecord.model_validate(stored)
        return out

    def _all_indexes(self, record: JobRecord) -> range:
        return range(1, max(record.segment_count, len(record.stages)) + 1)

    async def head(self, job_id: str, *, owner: str | None = None) -> JobRecord | None:
        """The job's head alone (no segment loaded): status, owner, counts, the stage summary.

        ``owner``: None only if that owner's (the API answers 404 to any other); unset: any owner's
        (the services, the admin scope).
        """
        record, _, _, _ = await self._read_head(job_id)
        return record if record is not None and owner in (None, record.owner or LOCAL_OWNER) else None

    async def get(self, job_id: str, *, owner: str | None = None) -> JobRecord | None:
        """The head with every segment loaded (the changes are read with :meth:`changes`); ``owner`` as for :meth:`head`."""
        record, intent, _, _ = await self._read_head(job_id)
        if record is None or owner not in (None, record.owner or LOCAL_OWNER):
            return None
        record.segments = await self._segments(job_id, self._all_indexes(record), intent)
        return record

    async def changes(self, job_id: str, after: int = 0) -> list[Change]:
        """The job's changes after id ``after``, in order (the SSE replay)."""
        record, intent, _, _ = await self._read_head(job_id)
        if record is None:
            return []
        pending = {c.id: c for c in intent.changes}
        wanted = [i for i in range(after + 1, record.change_id + 1) if i not in pending]
        out = dict(pending)
        for start in range(0, len(wanted), 256):
            chunk = wanted[start : start + 256]
            values = await asyncio.gather(*(self._value(change_key(job_id, i)) for i in chunk))
            out |= {i: Change.model_validate_json(v) for i, (v, _) in zip(chunk, values, strict=True) if v}
        return [out[i] for i in sorted(out) if i > after]

    # -- writing -------------------------------------------------------------------------------

    async def _flush(self, record: JobRecord, intent: Intent, listed: str | None) -> str:
        """Copy the head's intent to keys of their own (write-if-newer) and list it under its status; the status listed."""
        job_id = record.job_id
        if not intent.sent:
            if self.bus is None:
                raise LedgerConflict(f"job {job_id}: its last write's events are unpublished and this store has no bus")
            for event in intent.events:  # again after a crash: the Nats-Msg-Id makes the repeat a no-op
                await self.bus.publish(event)
            intent.sent = True
        for change in intent.changes:
            await self.kv.put(change_key(job_id, change.id), change.model_dump_json().encode())
        for n, patch in intent.patches.items():
            for _ in range(50):
                value, revision = await self._value(segment_key(job_id, n))
                stored = json.loads(value) if value else None
                if stored is not None and stored.get("version", 0) >= patch["version"]:
                    break
                merged = json.dumps((stored or {}) | patch, separators=(",", ":")).encode()
                try:
                    if revision is None:
                        await self.kv.create(segment_key(job_id, n), merged)
                    else:
                        await self.kv.update(segment_key(job_id, n), merged, last=revision)
                    break
                except KeyWrongLastSequenceError:
                    continue
        if listed is None:  # first listed: its entry in the created index, once (a repeat would move it to the end)
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.create(created_key(record), b"")
        if listed != record.status:  # the entry moves: created once under the new status (a repeat would move it to
            # the end of the stream, the listing's order), the old one removed without a marker (the count stays exact)
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.create(status_key(record), b"")
            if record.terminal and record.finished_at is not None:
                await self.kv.put(f"end.{int(record.finished_at.timestamp() * 1000):013d}.{job_id}", b"")
            if listed is not None:
                await self._drop(status_key(record, listed))
        return record.status

    async def _settle(self, record: JobRecord, intent: Intent, listed: str | None, revision: int) -> None:
        """After a write: copy its intent out at once and, if it had events, mark them published in the head.

        Failures are left for the next writer or :meth:`upkeep` (the head still holds everything).
        """
        had_events = not intent.sent
        try:
            await self._flush(record, intent, listed)
        except Exception as exc:  # noqa: BLE001 - repaired later from the head, which is the record
            log.warning("ledger.flush_deferred", job=record.job_id, error=repr(exc))
            return
        if had_events:
            with contextlib.suppress(KeyWrongLastSequenceError):  # a later write already dropped them
                await self.kv.update(head_key(record.job_id), _dump_head(record, intent, listed), last=revision)
            with contextlib.suppress(Exception):
                await self.kv.purge(f"out.{record.job_id}")

    def _check_size(self, what: str, size: int) -> None:
        if size > self.max_payload - HEADROOM:
            raise JobTooLarge(what, size, self.max_payload - HEADROOM)

    async def create(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """Store a new record (and the segments it holds); (the stored record, True) or (the one already there, False)."""
        if not record.changes:
            record.record("job.created")
        intent = Intent(
            {n: s.model_copy(update={"version": record.change_id}).model_dump(mode="json") for n, s in record.segments.items()},
            [c for c in record.changes if c.id == record.change_id],
        )
        payload = _dump_head(record, intent, None)
        self._check_size(f"job {record.job_id}'s record", len(payload))
        try:
            await self.kv.create(head_key(record.job_id), payload)
        except KeyWrongLastSequenceError:
            existing = await self.get(record.job_id)
            if existing is None:  # deleted in between: rare enough to surface
                raise LedgerConflict(f"job {record.job_id}: created and removed concurrently") from None
            return existing, False
        with contextlib.suppress(Exception):  # the next writer copies it if this one cannot
            await self._flush(record, intent, None)
        return record, True

    async def update(
        self,
        job_id: str,
        change: Callable[[JobRecord], Any],
        *,
        create: bool = False,
        segments: Iterable[int] | Literal["all"] = (),
        attempts: int = 50,
    ) -> tuple[JobRecord | None, Any]:
        """Compare-and-set: apply ``change`` to a fresh read until the write lands; (record, change's result).

        ``change`` sees the head with the ``segments`` named loaded (``"all"``: every one), may run
        several times (once per conflict), so it must only alter the record it is given. It is
        written back only if it appended a change. A missing record is created first when ``create``
        is set, else (None, None) is returned.
        """
        wanted = segments
        for _ in range(attempts):
            record, intent, listed, revision = await self._read_head(job_id)
            if record is None:
                if not create:
                    return None, None
                record, listed = JobRecord(job_id=job_id), None
            else:
                listed = await self._flush(record, intent, listed)
            indexes = self._all_indexes(record) if wanted == "all" else wanted
            record.segments = await self._segments(job_id, indexes, Intent())
            before = {n: s.model_dump(mode="json") for n, s in record.segments.items()}
            changes = record.change_id
            result = change(record)
            if record.change_id == changes:
                return record, result
            patches = {}
            for n, seg in record.segments.items():
                seg.version = record.change_id
                after = seg.model_dump(mode="json")
                if before.get(n, {}) | {"version": after["version"]} != after:
                    patches[n] = _patch(before.get(n), after)
            new = Intent(patches, [c for c in record.changes if c.id > changes], record.outbox)
            payload = _dump_head(record, new, listed)
            if not new.sent:  # found by upkeep should this process stop before the events are out
                await self.kv.put(f"out.{job_id}", b"")
            try:
                if revision is None:
                    written = await self.kv.create(head_key(job_id), payload)
                else:
                    written = await self.kv.update(head_key(job_id), payload, last=revision)
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0)  # another writer got there first: read again
                continue
            await self._settle(record, new, listed, written)
            return record, result
        raise LedgerConflict(f"job {job_id}: the record kept changing under {attempts} updates")

    # -- the in-flight cap -----------------------------------------------------------------------

    async def reserve(self, owner: str, job_id: str, limit: int, *, stale_s: float = 300.0) -> tuple[bool, int]:
        """Hold one of ``owner``'s ``limit`` places for ``job_id`` (compare-and-set on ``cap.{owner}``); (held, in flight).

        Atomic across gateway replicas: of N concurrent reservations at one place left exactly one is
        held. The same job again holds the place it has. A place is given back by :meth:`release`
        (the store does it when the job finishes); places of finished jobs, and of reservations whose
        job was never created within ``stale_s``, are reclaimed when the cap is reached.
        """
        key = f"cap.{token(owner)}"
        for _ in range(100):
            value, revision = await self._value(key)
            held: dict[str, str] = json.loads(value) if value else {}
            if job_id in held:
                return True, len(held)
            if len(held) >= limit:
                held = await self._live(held, stale_s)
                if len(held) >= limit:
                    return False, len(held)
            held[job_id] = _now().isoformat()
            try:
                if revision is None:
                    await self.kv.create(key, json.dumps(held).encode())
                else:
                    await self.kv.update(key, json.dumps(held).encode(), last=revision)
                return True, len(held)
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0)
        raise LedgerConflict(f"cap of {owner!r}: kept changing under 100 reservations")

    async def _live(self, held: dict[str, str], stale_s: float) -> dict[str, str]:
        heads = await asyncio.gather(*(self.head(job) for job in held))
        now = _now()
        return {
            job: at
            for (job, at), head in zip(held.items(), heads, strict=True)
            if (head is not None and not head.terminal)
            or (head is None and (now - datetime.fromisoformat(at)).total_seconds() < stale_s)
        }

    async def release(self, owner: str, job_id: str) -> None:
        """Give back ``job_id``'s place in ``owner``'s cap (idempotent)."""
        key = f"cap.{token(owner)}"
        for _ in range(100):
            value, revision = await self._value(key)
            held: dict[str, str] = json.loads(value) if value else {}
            if job_id not in held or revision is None:
                return
            del held[job_id]
            try:
                await self.kv.update(key, json.dumps(held).encode(), last=revision)
                return
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0)

    async def apply(self, event: Event) -> tuple[JobRecord, list[Event]]:
        def change(record: JobRecord) -> tuple[list[Event], bool]:
            was_terminal = record.terminal
            return transitions.fold(record, event), record.terminal and not was_terminal

        index = getattr(event, "index", None)
        record, (publish, finished) = await self.update(
            event.job_id, change, create=True, segments=[index] if isinstance(index, int) else ()
        )
        assert record is not None  # noqa: S101 - create=True always yields a record
        if finished:  # the one update that ended the job (compare-and-set: one writer wins)
            observe_finished(record, event.occurred_at)
            await self.release(record.owner or LOCAL_OWNER, record.job_id)
            if record.status == "completed":
                await self._completed(record.job_id)
        return record, publish

    async def cancel(self, job_id: str, by: str | None = None) -> tuple[JobRecord | None, bool]:
        """Mark the job cancelled (idempotent); (record, True when this call cancelled it)."""
        record, cancelled = await self.update(job_id, lambda record: transitions.cancel(record, by))
        if record is not None and cancelled:
            await self.release(record.owner or LOCAL_OWNER, job_id)
        return record, cancelled

    async def is_cancelled(self, job_id: str) -> bool:
        record = await self.head(job_id)
        return record is not None and record.status == "cancelled"

    def check_fits(self, record: JobRecord, board: Storyboard) -> None:
        """Refuse (:class:`JobTooLarge`) a job whose head or any one event (and so segment) would exceed ``max_payload``.

        Call it before anything of the job is stored or published.
        """
        events = [
            SegmentRequested(
                job_id=record.job_id, index=n, segment_id=seg.id, spec=render_spec(board, n), model=seg.model or board.model
            )
            for n, seg in enumerate(board.segments, start=1)
        ]
        probe = record.model_copy(update={"stages": "d" * record.segment_count})
        head = len(_dump_head(probe, Intent(), None))
        self._check_size(f"job {record.job_id}'s record", head)
        for event in events:
            size = len(event.model_dump_json())
            what = f"segment {index}'s {event.subject}" if (index := getattr(event, "index", None)) else event.subject
            self._check_size(what, size)
            self._check_size(f"job {record.job_id}'s record with {what}", head + size)  # the write that records it

    # -- listing -------------------------------------------------------------------------------

    async def _index(self, owners: Iterable[str] | None, statuses: Iterable[str] | None) -> list[tuple[str, str, str, str]]:
        """(owner token, status, created, job) of the status index entries matching, newest created first.

        Reads every entry matching: for the unfinished jobs (queue positions, deadlines, metrics) and the
        listing of several owners (not one, not all), never for a page of one owner or of all.
        """
        owner_tokens = ["*"] if owners is None else [token(o) for o in owners]
        status_list = ["*"] if statuses is None else list(statuses)
        keys = [key for o in owner_tokens for s in status_list for key in await self._keys(f"sts.{o}.{s}.>")]
        entries = []
        for key in keys:
            parts = key.split(".")
            if len(parts) == 5:
                entries.append((parts[1], parts[2], parts[3], parts[4]))
        return sorted(set(entries), key=lambda e: (e[2], e[3]), reverse=True)

    async def _keys(self, pattern: str) -> list[str]:
        """The keys matching a subject pattern, read by the server's filter (nats-py's ``keys`` reads every key)."""
        watcher = await self.kv.watch(pattern, ignore_deletes=True, meta_only=True, inactive_threshold=WATCH_GONE_S)
        keys = []
        try:
            while (entry := await watcher.updates(timeout=30)) is not None:
                keys.append(entry.key)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()
        return keys

    async def list_jobs(
        self, owners: Iterable[str] | None = None, status: str | None = None, *, limit: int = 20, offset: int = 0
    ) -> tuple[int, list[JobRecord]]:
        """(how many match, the heads of one page): ``owners`` None sees every owner.

        One owner or every owner (what the API asks): without a status the newest created first, from the created
        index; with a status the latest to reach it first, from the status index; both at the cost of the page,
        never of the history (:meth:`_page`). Several owners: every entry of theirs is read, newest created first.
        """
        owners = None if owners is None else list(owners)
        if owners is None or len(owners) == 1:
            who = "*" if owners is None else token(owners[0])
            if status is None:
                return await self._page(f"new.{who}.>", limit=limit, offset=offset)
            return await self._page(f"sts.{who}.{status}.>", limit=limit, offset=offset, status=status)
        entries = await self._index(owners, None if status is None else [status])
        page = entries[offset : offset + limit]
        heads = await asyncio.gather(*(self.head(job) for _, _, _, job in page))
        out = []
        for (owner, listed, created, job), head in zip(page, heads, strict=True):
            if head is None or head.status != listed:
                await self._unlist(f"sts.{owner}.{listed}.{created}.{job}", listed)
                continue
            out.append(head)
        return len(entries), out

    async def _page(self, pattern: str, *, limit: int, offset: int, status: str | None = None) -> tuple[int, list[JobRecord]]:
        """One page of an index (the last entries in stream order first) and its size, at a cost of the page, never
        of the history.

        The entries are read from the end of the bucket's stream backwards (an entry is created once, when the
        job is first listed or reaches its status, so stream order is the order they came); how many there are
        is the pending count of a consumer filtered on them (entries are removed without leaving a marker). An
        entry of the status index whose head says otherwise (a write that lost a race) is dropped from the
        page and the index, and the page read again.
        """
        for _ in range(3):
            total = await self._count(pattern)
            keys = (await self._tail(pattern, offset + limit))[offset : offset + limit]
            heads = await asyncio.gather(*(self.head(key.rsplit(".", 1)[1]) for key in keys))
            stale = [key for key, head in zip(keys, heads, strict=True) if status is not None and not _says(head, status)]
            for key in stale:
                await self._unlist(key, status)
            if not stale:
                break
        return total, [h for h in heads if h is not None and (status is None or h.status == status)]

    async def _unlist(self, key: str, status: str | None) -> None:
        """Drop a status entry whose head says otherwise; put back should the job have reached ``status`` again meanwhile."""
        await self._drop(key)
        head = await self.head(key.rsplit(".", 1)[1])
        if _says(head, status):
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.create(key, b"")

    async def _subject_of(self, pattern: str) -> tuple[str, str]:
        """The bucket's stream and the subject of the keys matching ``pattern`` in it.

        Read once from the bucket's status (``KeyValue.status()``, public nats-py API: the stream's name and
        subjects); nats-py keeps its own copies of both private.
        """
        if self._bucket_stream is None:
            status = await self.kv.status()
            config = status.stream_info.config
            subjects = config.subjects or [f"$KV.{status.bucket}.>"]
            self._bucket_stream = (config.name or f"KV_{status.bucket}", subjects[0].removesuffix(">"))
        stream, prefix = self._bucket_stream
        return stream, prefix + pattern

    async def _count(self, pattern: str, start: int = 1) -> int:
        """How many keys matching ``pattern`` sit at stream sequence ``start`` or later: the pending count of a
        short-lived consumer filtered on them (counted by the server; nothing is delivered)."""
        stream, subject = await self._subject_of(pattern)
        config = ConsumerConfig(
            filter_subject=subject,
            deliver_policy=DeliverPolicy.ALL if start <= 1 else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if start <= 1 else start,
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            inactive_threshold=30.0,
        )
        info = await self.js.add_consumer(stream, config)
        with contextlib.suppress(Exception):
            await self.js.delete_consumer(stream, info.name)
        return int(info.num_pending or 0)

    async def _tail(self, pattern: str, want: int) -> list[str]:
        """The last ``want`` keys matching ``pattern`` in stream order, last first.

        A start is searched back from the stream's end by counts alone (windows growing fourfold, then
        halved towards at most twice ``want`` matches), then the matches from there are read: the cost is
        some counts and about ``want`` reads, not the bucket's size.
        """
        stream, subject = await self._subject_of(pattern)
        last = (await self.js.stream_info(stream)).state.last_seq
        window, start, found = 4 * want + 64, last + 1, 0
        low = start
        while found < want and start > 1:
            low, start = start, max(1, last - window + 1)
            found, window = await self._count(pattern, start), window * 4
        high = low if found >= want else start  # the count from ``high`` is below ``want``; from ``start`` not
        for _ in range(8):
            if found < 2 * want or high - start <= 1:
                break
            middle = (start + high) // 2
            if (count := await self._count(pattern, middle)) >= want:
                start, found = middle, count
            else:
                high = middle
        keys, seq, prefix = [], start, subject.removesuffix(pattern)
        while seq <= last:
            try:
                msg = await self.js.get_msg(stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                break
            if msg.seq is None or msg.seq > last:
                break
            if msg.subject and not (msg.headers or {}).get("KV-Operation"):  # a live key, not a delete or purge marker
                keys.append(msg.subject.removeprefix(prefix))
            seq = msg.seq + 1
        return keys[::-1][:want]

    async def _drop(self, key: str) -> None:
        """Remove a key (or every key of a pattern) with no marker left (a stream purge of its subject), so consumers'
        counts stay exact."""
        stream, subject = await self._subject_of(key)
        await self.js.purge_stream(stream, subject=subject)

    async def active(self) -> list[JobRecord]:
        """Every unfinished job's head, oldest first (queue positions and ETAs read this)."""
        entries = await self._index(None, ACTIVE)
        heads = await asyncio.gather(*(self.head(job) for _, _, _, job in entries))
        records = [h for h in heads if h is not None and not h.terminal]
        return sorted(records, key=lambda r: (r.created_at, r.job_id))

    async def eta_sample(self) -> list[JobRecord]:
        """The unfinished jobs' heads and the latest completed ones (their measured stage times).

        The completed ones are named by ``recent`` (kept as jobs complete), so a job view never reads the history.
        """
        value, _ = await self._value(RECENT_KEY)
        if value is None:  # a store from before ``recent`` was kept: once, the latest completed in the status index
            ids = [record.job_id for record in (await self.list_jobs(None, "completed", limit=RECENT))[1]]
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.create(RECENT_KEY, json.dumps(ids).encode())
        else:
            ids = json.loads(value)
        done = await asyncio.gather(*(self.head(job) for job in ids))
        return [*(await self.active()), *(h for h in done if h is not None and h.status == "completed")]

    async def _completed(self, job_id: str) -> None:
        """Put ``job_id`` first in ``recent``, the latest :data:`RECENT` completed jobs (compare-and-set)."""
        for _ in range(100):
            value, revision = await self._value(RECENT_KEY)
            ids = [job_id, *(j for j in json.loads(value or b"[]") if j != job_id)][:RECENT]
            try:
                if revision is None:
                    await self.kv.create(RECENT_KEY, json.dumps(ids).encode())
                else:
                    await self.kv.update(RECENT_KEY, json.dumps(ids).encode(), last=revision)
                return
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0)

    async def export_metrics(self) -> None:
        """Unfinished jobs by state and the longest time one went without progress, for /metrics.

        Reads the unfinished jobs' index entries and heads only, so a poll costs what is in flight, never
        the history: finished jobs are counted as they finish (``reelforge_job_duration_seconds_count``).
        """
        counts = dict.fromkeys(ACTIVE, 0)
        stalled, now = 0.0, _now()
        for record in await self.active():
            counts[record.status] = counts.get(record.status, 0) + 1
            stalled = max(stalled, (now - record.updated_at).total_seconds())
        for state, count in counts.items():
            JOBS.labels(state).set(count)
        JOB_STALLED_SECONDS.set(stalled)

    async def upkeep(
        self,
        retention: timedelta | None,
        now: datetime | None = None,
        republish: Callable[[JobRecord], Awaitable[None]] | None = None,
        forget: Callable[[JobRecord], Awaitable[None]] | None = None,
    ) -> None:
        """The store's periodic work (the gateway runs it): outboxes repaired, deadlines enforced, old jobs swept.

        ``republish`` publishes what a job's submission or resume owes (see :meth:`republish_owed`); ``forget``
        deletes what a swept job keeps outside the store (see :meth:`sweep`).
        """
        await self.index_statuses()
        await self.index_created()
        await self.repair()
        if republish is not None:
            await self.republish_owed(republish, now)
        await self.enforce_deadlines(now)
        if retention is not None:
            await self.sweep(retention, now, forget)

    async def index_statuses(self) -> int:
        """Enter every job of the status index of stores from before (``idx.``) in ``sts.`` under its head's status,
        then purge ``idx.`` whole, markers included (once per store); how many jobs.

        An old entry may name a status its job has left (it was removed with a marker, or a write lost a race),
        so the heads decide. They are entered in the order they last changed (finished, for finished jobs), so
        a listing by status shows them below the few that changed between the upgrade and this first upkeep.
        """
        if await self._value(STATUS_INDEXED) != (None, None):
            return 0
        jobs = sorted({key.rsplit(".", 1)[1] for key in await self._keys("idx.>")})
        heads: list[JobRecord | None] = []
        for start in range(0, len(jobs), 256):
            heads += await asyncio.gather(*(self.head(job) for job in jobs[start : start + 256]))
        live = sorted((h for h in heads if h is not None), key=lambda h: (h.finished_at or h.updated_at, h.job_id))
        for head in live:
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.create(status_key(head), b"")
        await self._drop("idx.>")
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self.kv.create(STATUS_INDEXED, str(len(live)).encode())
        return len(live)

    async def index_created(self) -> int:
        """Give every job stored before the created index existed its entry there (once per store); how many.

        They are entered oldest first at the stream's end, so a listing without a status shows them above the
        few jobs created between the upgrade and this first upkeep (their order among themselves is kept).
        """
        if await self._value(CREATED_INDEXED) != (None, None):
            return 0
        entries = sorted(set((o, c, j) for o, _, c, j in await self._index(None, None)), key=lambda e: (e[1], e[2]))
        added = 0
        for owner, created, job in entries:
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.create(f"new.{owner}.{created}.{job}", b"")
                added += 1
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self.kv.create(CREATED_INDEXED, str(added).encode())
        return added

    async def repair(self) -> int:
        """Publish the events of writes whose writer stopped (or failed to publish) before they were out; how many jobs."""
        repaired = 0
        for key in await self._keys("out.>"):
            job_id = key.split(".", 1)[1]
            record, intent, listed, revision = await self._read_head(job_id)
            if record is not None and revision is not None and not intent.sent:
                await self._settle(record, intent, listed, revision)
                repaired += 1
            else:
                await self.kv.purge(key)
        return repaired

    async def owe(self, job_id: str) -> None:
        """Before a write whose events the caller publishes itself (a submission, a resume): the upkeep's reminder."""
        await self.kv.put(f"pub.{job_id}", json.dumps({"at": _now().isoformat()}).encode())

    async def paid(self, job_id: str) -> None:
        """What :meth:`owe` announced is out."""
        await self.kv.purge(f"pub.{job_id}")

    async def republish_owed(self, republish: Callable[[JobRecord], Awaitable[None]], now: datetime | None = None) -> int:
        """Publish, through ``republish``, what each job owes whose writer has not said :meth:`paid` within
        :data:`OWED_GRACE`; how many jobs. A job finished or gone owes nothing. The events carry their
        Nats-Msg-Id: those that had landed are dropped by the bus."""
        now = now or _now()
        repaired = 0
        for key in await self._keys("pub.>"):
            job_id = key.split(".", 1)[1]
            value, _ = await self._value(key)
            if value is not None and now - datetime.fromisoformat(json.loads(value)["at"]) < OWED_GRACE:
                continue  # its writer may still be publishing
            record = await self.get(job_id)
            if record is not None and not record.terminal:
                await republish(record)
                repaired += 1
                log.info("ledger.republished", job=job_id, resume=record.resume)
            await self.kv.purge(key)
        return repaired

    async def enforce_deadlines(self, now: datetime | None = None) -> list[str]:
        """Cancel, with reason ``deadline``, every unfinished job past its deadline; their ids."""
        now = now or _now()
        cancelled = []
        for record in await self.active():
            if transitions.past_deadline(record, now):
                _, done = await self.update(
                    record.job_id,
                    lambda r: transitions.past_deadline(r, now) and transitions.cancel(r, reason="deadline"),
                )
                if done:
                    await self.release(record.owner or LOCAL_OWNER, record.job_id)
                    cancelled.append(record.job_id)
        return cancelled

    async def sweep(
        self, retention: timedelta, now: datetime | None = None, forget: Callable[[JobRecord], Awaitable[None]] | None = None
    ) -> int:
        """Delete every job finished longer than ``retention`` ago, whole; how many were deleted.

        ``forget`` runs first for each (the gateway deletes the job's derived renditions): should it fail, the job is
        kept and swept again next time, so nothing it names is left without its record."""
        cutoff = int(((now or _now()) - retention).timestamp() * 1000)
        deleted = 0
        for key in await self._keys("end.>"):
            _, finished, job_id = key.split(".", 2)
            if int(finished) > cutoff:
                continue
            record, _, listed, _ = await self._read_head(job_id)
            if record is not None and record.terminal and record.finished_at is not None:
                if int(record.finished_at.timestamp() * 1000) > cutoff:
                    await self.kv.purge(key)  # resumed and finished again since: its newer entry decides
                    continue
                if forget is not None:
                    await forget(record)
                keys = [segment_key(job_id, n) for n in self._all_indexes(record)]
                keys += [change_key(job_id, i) for i in range(1, record.change_id + 1)]
                for start in range(0, len(keys), 256):
                    await asyncio.gather(*(self.kv.purge(k) for k in keys[start : start + 256]))
                for entry in {status_key(record, status) for status in (record.status, listed) if status}:
                    await self._drop(entry)  # no marker left: the status index is counted
                await self._drop(created_key(record))  # nor here: the created index is counted
                await self.kv.purge(head_key(job_id))
                deleted += 1
            await self.kv.purge(key)  # deleted now, already gone, or resumed (a new entry comes when it finishes)
        return deleted

    async def watch(self, job_id: str, heartbeat_s: float = 15.0) -> AsyncIterator[JobRecord | None]:
        """Yield the head now and after every write; None when ``heartbeat_s`` passes without one."""
        watcher = await self.kv.watch(head_key(job_id), inactive_threshold=WATCH_GONE_S)
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=heartbeat_s)
                except Exception:  # noqa: BLE001 - nats raises its own TimeoutError type
                    yield None
                    continue
                if entry is None or not entry.value:
                    continue  # the "no more history" marker, or a delete
                yield _load_head(entry.value)[0]
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

    async def cancelled(self, job_id: str, fresh: bool = False) -> bool:
        now = asyncio.get_running_loop().time()
        if not fresh and (hit := self._cache.get(job_id)) and now - hit[0] < self.ttl_s:
            return hit[1]
        answer = self.ledger is not None and await self.ledger.is_cancelled(job_id)
        self._cache[job_id] = (now, answer)
        return answer

    def __call__(self, job_id: str, *, fresh: bool = False) -> bool:
        """From a worker thread: ask the ledger on the service's loop (``fresh``: not from the cache)."""
        if self.ledger is None or self.loop is None:
            return False
        return asyncio.run_coroutine_threadsafe(self.cancelled(job_id, fresh), self.loop).result(timeout=10)
