"""Submission: a validated storyboard becomes a stored manifest and one command event per segment.

The job id is random, or derived from an idempotency key; every publish carries a Nats-Msg-Id made
of the job and the segment, so submitting the same job again publishes nothing new.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from reelforge_gateway.deps import GatewayDeps
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


def parse_submission(body: bytes, limits: StoryboardLimits, max_yaml_bytes: int) -> tuple[Storyboard, str | None]:
    """The storyboard of a submission (JSON or YAML) and its optional top-level ``webhook_url``; CPU work, no I/O."""
    data: Any = decode_storyboard(body, max_yaml_bytes)
    webhook_url = None
    if isinstance(data, dict) and "webhook_url" in data:
        webhook_url = data.pop("webhook_url")
        if not isinstance(webhook_url, str):
            raise StoryboardInvalid([{"field": "webhook_url", "message": f"expected a URL, got {type(webhook_url).__name__}"}])
    return parse_storyboard(data, limits), webhook_url


async def read_submission(
    body: bytes, *, limits: StoryboardLimits, max_yaml_bytes: int, timeout_s: float, allow_private: bool
) -> tuple[Storyboard, str | None]:
    """:func:`parse_submission` in a worker thread within ``timeout_s`` (the event loop keeps serving), then the webhook checked.

    A parse past the time limit is answered 422 at once; its thread finishes on its own (it is
    bounded: aliases are refused, YAML is read up to ``max_yaml_bytes``).
    """
    try:
        board, webhook_url = await asyncio.wait_for(
            asyncio.to_thread(parse_submission, body, limits, max_yaml_bytes), timeout=timeout_s
        )
    except TimeoutError:
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
