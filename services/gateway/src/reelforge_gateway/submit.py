"""Submission: a validated storyboard becomes a stored manifest and one command event per segment.

The job id is random, or derived from an idempotency key; every publish carries a Nats-Msg-Id made
of the job and the segment, so submitting the same job again publishes nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import structlog

from reelforge_gateway.deps import GatewayDeps
from reelforge_shared.bounded_yaml import DeadlinePassed
from reelforge_shared.bus import Bus
from reelforge_shared.chain import hold, release
from reelforge_shared.egress import Egress
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import Event, JobSubmitted, SegmentGenerated
from reelforge_shared.jobs import JobRecord
from reelforge_shared.jobs.transitions import resume_events
from reelforge_shared.references import EXTENSIONS, ReferenceLimits, media_fields, reference_egress, store_media, stored_name
from reelforge_shared.shots import ShotPlan, ShotRequests
from reelforge_shared.specs import segment_requests
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, StoryboardInvalid, StoryboardLimits, decode_storyboard, parse_storyboard
from reelforge_shared.webhooks import check_webhook_url

T = TypeVar("T")

log = structlog.get_logger("reelforge.gateway")


def new_job_id(idempotency_key: str | None = None) -> str:
    if idempotency_key:
        return "j-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
    return "j-" + uuid.uuid4().hex[:16]


async def submit_job(
    board: Storyboard,
    *,
    bus: Bus,
    store: ObjectStore,
    bucket: str,
    job_id: str | None = None,
    model: str | None = None,
    owner: str | None = None,
    reuse: bool = False,
) -> JobSubmitted:
    """Store the storyboard, then publish JobSubmitted and one SegmentRequested per segment (per take of it).

    A segment renders with its own ``model``, else the request's ``model``, else the storyboard's (else the
    generator's). Each request carries its shot key (:mod:`reelforge_shared.shots`); with ``reuse`` (the API's
    and ``reelforge run``'s setting), a segment whose key ``owner`` already rendered and passed is not rendered:
    its frames are copied and its ``segment.generated`` published here. A segment that starts from the previous
    one's last frame waits until those frames exist (:mod:`reelforge_shared.chain`).
    """
    job_id = job_id or new_job_id()
    key = Keys.storyboard(job_id)
    store.put_json(bucket, key, board.model_dump(mode="json"))
    plan = ShotPlan(owner=owner, reuse=reuse)
    shots = ShotRequests(store, bucket, owner=owner, reuse=reuse)
    requests: list[Event] = []
    for index, seg in enumerate(board.segments, start=1):
        takes = segment_requests(board, job_id, index, model=seg.model or model or board.model)
        if seg.start_from == "previous":  # one take (the storyboard refuses takes with start_from)
            hold(store, bucket, takes[0])  # requested when the segment before it has frames (reelforge_shared.chain)
            continue
        for take in takes:
            request, generated = shots.plan(take)
            requests += [request] if generated is None else [request, generated]
            if request.take == 0:
                plan.keys[index] = request.shot_key
                if request.reused_from is not None:
                    plan.reused[index] = request.reused_from
    store.put_json(bucket, Keys.shot_plan(job_id), plan.model_dump(mode="json"))
    # A reused shot has its frames already: the segment that continues from it is requested now.
    requests += [e for g in list(requests) if isinstance(g, SegmentGenerated) for e in release(store, bucket, g)]
    submitted = JobSubmitted(
        job_id=job_id, title=board.title, segment_count=len(board.segments), duration_s=board.duration_s, storyboard_key=key
    )
    await bus.publish(submitted)
    for event in requests:
        await bus.publish(event)
    return submitted


async def publish_submission(board: Storyboard, *, deps: GatewayDeps, job_id: str, owner: str) -> None:
    """:func:`submit_job` for a job the ledger holds, whose reminder (:meth:`Ledger.owe`) was written before it.

    A failure (NATS gone between the ledger write and the publish) is logged and left to the upkeep,
    which publishes what the job owes (:class:`Republisher`): the job is accepted either way.
    """
    try:
        await submit_job(
            board, bus=deps.bus, store=deps.store, bucket=deps.work_bucket, job_id=job_id, owner=owner, reuse=deps.shot_reuse
        )
    except Exception as exc:  # noqa: BLE001 - the ledger holds the job and its reminder: the upkeep repairs it
        log.warning("job.publish_deferred", job_id=job_id, error=repr(exc))
        return
    await deps.ledger.paid(job_id)


@dataclass(kw_only=True, slots=True)
class Republisher:
    """What a job's submission or resume owes the bus, published from its record and stored storyboard.

    The gateway's upkeep calls it (:meth:`Ledger.republish_owed`) for a job whose writer did not finish
    publishing; every event carries its Nats-Msg-Id, so what had landed is dropped by the bus.
    """

    bus: Bus
    store: ObjectStore
    bucket: str
    reuse: bool = True

    async def __call__(self, record: JobRecord) -> None:
        key = Keys.storyboard(record.job_id)
        if not await asyncio.to_thread(self.store.exists, self.bucket, key):  # a keyed request stopped before storing it
            log.warning("job.republish_skipped", job_id=record.job_id, reason="storyboard not stored: the same request again")
            return
        board = parse_storyboard(await asyncio.to_thread(self.store.get_json, self.bucket, key))
        if record.resume:
            for event in resume_events(record, board):
                await self.bus.publish(event)
            return
        await submit_job(
            board, bus=self.bus, store=self.store, bucket=self.bucket, job_id=record.job_id, owner=record.owner, reuse=self.reuse
        )


def parse_submission(
    body: bytes, limits: StoryboardLimits, max_yaml_bytes: int, deadline: float | None = None
) -> tuple[Storyboard, str | None]:
    """The storyboard of a submission (JSON or YAML) and its optional top-level ``webhook_url``; CPU work, no I/O.

    Stops with DeadlinePassed once ``deadline`` (``time.monotonic()``) has passed: within the YAML read, and between steps.
    """
    data: Any = decode_storyboard(body, max_yaml_bytes, deadline)
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlinePassed
    webhook_url = None
    if isinstance(data, dict) and "webhook_url" in data:
        webhook_url = data.pop("webhook_url")
        if not isinstance(webhook_url, str):
            raise StoryboardInvalid([{"field": "webhook_url", "message": f"expected a URL, got {type(webhook_url).__name__}"}])
    return parse_storyboard(data, limits), webhook_url


PARSE_THREAD = "reelforge-parse"
_pauses = 0
_pauses_lock = threading.Lock()
_collector_was_on = True


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a storyboard is parsed (by any number of parse threads at once).

    A YAML read makes hundreds of thousands of objects in a few hundred milliseconds, which set off a full collection;
    that holds the GIL for all of it (277-570 ms measured on the loaded 2-core machine), and the event loop answered
    nothing meanwhile. The read makes no cycles (its objects go by reference counting when it ends or stops), and it
    is bounded in time, so the collector is paused for it and resumed after.
    """
    global _pauses, _collector_was_on
    with _pauses_lock:
        if _pauses == 0:
            _collector_was_on = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_on:
                gc.enable()


async def _in_own_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own (named PARSE_THREAD), which ends when it returns; the shared worker threads
    (S3 calls) are never taken by a parse. Cancelling the wait leaves the thread to end by itself."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():  # the caller stopped waiting (its time ran out)
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(cast(T, result))

    def run() -> None:
        with _collector_paused():
            try:
                result, error = work(), None
            except Exception as exc:  # noqa: BLE001 (any error is handed to the waiting caller, which raises it)
                result, error = None, exc
                _forget_frames(exc)  # before the collector resumes: what the work made goes now, uncounted
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=PARSE_THREAD, daemon=True).start()
    return await done


def _forget_frames(error: BaseException) -> None:
    """Clear the locals of the finished frames an error's tracebacks hold (its context's too): a parse stopped
    half-way would otherwise keep its partial data alive in a cycle (error, traceback, frame) until a collection."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


async def read_submission(
    body: bytes, *, limits: StoryboardLimits, max_yaml_bytes: int, timeout_s: float, allow_private: bool
) -> tuple[Storyboard, str | None]:
    """:func:`parse_submission` in a thread of its own within ``timeout_s`` (the event loop keeps serving), then the
    webhook checked.

    Past the time limit the answer is 422 at once, and the parse itself stops there (the YAML read checks the
    deadline at every node, and the steps between it): its thread ends instead of reading on.
    """
    deadline = time.monotonic() + timeout_s
    try:
        async with asyncio.timeout(timeout_s):  # the answer comes at the deadline even from a step that cannot stop
            board, webhook_url = await _in_own_thread(lambda: parse_submission(body, limits, max_yaml_bytes, deadline))
    except (TimeoutError, DeadlinePassed):
        message = f"not read within {timeout_s} s (REELFORGE_PARSE_TIMEOUT_S); send JSON, or a smaller storyboard"
        raise StoryboardInvalid([{"field": "storyboard", "message": message}]) from None
    if webhook_url is not None:
        try:
            await check_webhook_url(webhook_url, allow_private)
        except InvalidInput as exc:
            raise StoryboardInvalid([{"field": "webhook_url", "message": str(exc)}]) from None
    return board, webhook_url


async def stage_media(
    board: Storyboard,
    *,
    owner: str,
    job_id: str,
    store: ObjectStore,
    bucket: str,
    egress: Egress | None,
    limits: ReferenceLimits,
) -> Storyboard:
    """``board`` with every medium it names stored under the job and named by key, or 422 naming the field.

    An upload key of ``owner`` (``POST /v1/uploads``) is copied under the job; an ``https`` URL is
    fetched once through the egress guard and checked; anything else (a path, http, another owner's
    upload or another job's key) is refused, with one message whether or not it exists.
    """
    data = board.model_dump(mode="json")
    mine = Keys.uploads(owner)
    try:
        for holder, key, field, _kind in media_fields(data):
            ref = holder.get(key)
            if not ref or not ref.startswith("uploads/"):
                continue
            name = ref[len(mine) :]  # a plain file name in the caller's own uploads folder (no "..", no sub-folder)
            plain = ref.startswith(mine) and "/" not in name and Keys.owned("_", Keys.job_input("_", name))
            if not plain or not await asyncio.to_thread(store.exists, bucket, ref):
                raise InvalidInput(f"{field}: {ref!r} is not one of your uploads")
            content_type = next((t for t, ext in EXTENSIONS.items() if ref.endswith(ext)), "")
            stored = Keys.job_input(job_id, stored_name(field, content_type))
            await asyncio.to_thread(store.copy, bucket, ref, bucket, stored)
            holder[key] = stored
        staged = parse_storyboard(data)
        if egress is None:
            egress = reference_egress(allow_private=False, deadline_s=20.0, limits=limits)
        return await store_media(staged, job_id=job_id, egress=egress, store=store, bucket=bucket, limits=limits)
    except InvalidInput as exc:
        if isinstance(exc, StoryboardInvalid):
            raise
        field = str(exc).split(":", 1)[0]
        raise StoryboardInvalid([{"field": field, "message": str(exc)}]) from None
