"""Jobs API v1: submit, list, read, follow (server-sent events), cancel, re-render a segment, edit the storyboard, extend
the film from its last frame, fetch the film.

Every job's state is read from and written to the job ledger (:mod:`reelforge_shared.jobs`); the
gateway keeps no copy. Every route that names a job reads it through
:func:`reelforge_gateway.views.owned_job`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import weakref
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from reelforge_gateway.auth import caller_of
from reelforge_gateway.deps import Deps, GatewayDeps
from reelforge_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody
from reelforge_gateway.prompt_fit import prompt_errors
from reelforge_gateway.streams import StreamLease
from reelforge_gateway.submit import new_job_id, publish_submission, read_submission, stage_media
from reelforge_gateway.views import JobAccepted, JobPage, JobSummary, JobView, accepted, job_view, owned_job
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import JobCancelled
from reelforge_shared.jobs import (
    JobRecord,
    JobStatus,
    JobTooLarge,
    RerenderRefused,
    rerender_segment,
    resume_job,
)
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import MAX_PROMPT_CHARS, Storyboard, StoryboardInvalid, parse_storyboard
from reelforge_shared.versions import extended_storyboard, new_storyboard_version

router = APIRouter(tags=["jobs"])
JOB_ID = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="job id", examples=["j-5f1c2e7a9b0d4e21"])
EXAMPLE_STORYBOARD = {
    "title": "Two shots",
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "segments": [
        {"id": "walk", "prompt": "walks into the field", "characters": ["hero"]},
        {"id": "sit", "prompt": "sits down", "frames": 12, "transition": {"type": "dissolve", "duration": 1.0}},
    ],
    "webhook_url": "https://example.com/hooks/reelforge",
}


class RerenderRequest(BaseModel):
    """What to change in the segment; at least one of the two."""

    seed: int | None = Field(None, ge=0, lt=2**32, description="new seed", examples=[4242])
    prompt: str | None = Field(
        None, min_length=1, max_length=MAX_PROMPT_CHARS, description="new prompt (the style and cast are still applied)"
    )


class ExtendRequest(BaseModel):
    """The segment to append: it continues from the last frame of the film."""

    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="what happens next (the style and the last segment's cast are applied)",
    )
    duration_s: float = Field(
        gt=0, le=600, description="seconds of the new segment, at the last segment's frame rate (REELFORGE_MAX_* limits apply)"
    )


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    wanted: dict[int | str, dict[str, Any]] = {401: ERROR_RESPONSES[401], 429: ERROR_RESPONSES[429]}
    for code in codes:
        wanted[code] = ERROR_RESPONSES.get(code, {"model": ErrorBody, "description": "see `error` and `message`"})
    return wanted


# The path's segment number (re-render, extend, select a take), and what a POST that makes the film's next version
# answers: 202 with the job, 404 for a job that is not the caller's, 409 when the job cannot move, 422 for bad input.
SegmentNumber = Annotated[int, Path(ge=1, le=10_000, description="1-based segment number")]
NEW_VERSION: dict[str, Any] = {"status_code": 202, "response_model": JobView, "responses": responses(404, 409, 422)}


def refused(exc: RerenderRefused, **where: Any) -> ApiError:
    """The API's answer to a re-render or a new storyboard the job store refused: 404 for what is missing, else 409."""
    return ApiError(404 if exc.code.endswith("not_found") else 409, exc.code, str(exc), **where)


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses=responses(409, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": EXAMPLE_STORYBOARD},
                "application/yaml": {"schema": {"type": "string"}, "example": "segments:\n  - {id: a, prompt: walks}\n"},
            },
        }
    },
)
async def create_job(
    request: Request,
    deps: Deps,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=200, description="same key and body: same job")
    ] = None,
    deadline_s: Annotated[
        float | None,
        Query(gt=0, le=30 * 86_400, description="cancel the job (reason `deadline`) if it is not finished this many seconds on"),
    ] = None,
) -> JSONResponse:
    """Submit a storyboard (JSON or YAML body, optional top-level `webhook_url`).

    202 with a Location header. A bad storyboard gets 422 naming each failing field, and nothing
    is published; so does a prompt longer than its model's text encoder reads (field, count and limit
    named), where the model has a limit (T5/UMT5, Gemma, Qwen encoders; CLIP families read any
    length). The same Idempotency-Key with the same body returns the same job; with another body
    it gets 409 and nothing is published. If that job failed, it resumes from the work already
    stored: its delivered segments stay, its failed ones are rendered again from the frames stored.
    """
    caller = caller_of(request)
    body = await request.body()  # at most REELFORGE_MAX_BODY_BYTES: the guard middleware cut it
    board, webhook_url = await read_submission(
        body,
        limits=deps.limits,
        max_yaml_bytes=deps.max_yaml_bytes,
        timeout_s=deps.parse_timeout_s,
        allow_private=deps.webhook_allow_private,
    )
    if errors := await asyncio.to_thread(prompt_errors, board, default_model=deps.default_model):
        raise StoryboardInvalid(errors)
    digest = hashlib.sha256(body).hexdigest()
    job_id = new_job_id(f"{caller}\n{idempotency_key}") if idempotency_key else new_job_id()
    if idempotency_key and (existing := await deps.ledger.get(job_id)) is not None:
        if existing.body_sha256 != digest:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was used with another body",
                idempotency_key=idempotency_key,
                job_id=job_id,
            )
        if existing.status == "queued":  # the first request may have stopped before publishing: publish again
            board = await _staged(board, deps, caller, job_id)
            await publish_submission(board, deps=deps, job_id=job_id, owner=caller)
        elif existing.status == "failed" or (existing.resume and not existing.terminal):
            # failed (an outage past the tolerance): resume from the work stored; a resume under way: publish again
            existing = await resume_job(deps.ledger, deps.bus, board, job_id, by=caller) or existing
        return accepted(existing, board.duration_s)
    if deps.access.enabled:
        held, in_flight = await deps.ledger.reserve(caller, job_id, deps.max_jobs_in_flight)
        if not held:
            message = f"{in_flight} jobs of {caller!r} are unfinished (at most {deps.max_jobs_in_flight})"
            raise ApiError(
                429, "queue_full", message, headers={"Retry-After": "60"}, in_flight=in_flight, limit=deps.max_jobs_in_flight
            )
    try:  # the media it names, fetched and checked, stored under the job: 422 naming the field, and the place given back
        board = await _staged(board, deps, caller, job_id)
    except StoryboardInvalid:
        if deps.access.enabled:
            await deps.ledger.release(caller, job_id)
        raise
    record = JobRecord(
        job_id=job_id,
        title=board.title,
        segment_count=len(board.segments),
        owner=caller,
        webhook_url=webhook_url,
        idempotency_key=idempotency_key,
        body_sha256=digest,
        deadline_at=datetime.now(UTC) + timedelta(seconds=deadline_s) if deadline_s else None,
    )
    try:
        deps.ledger.check_fits(record, board)
        # What the upkeep needs to publish the job should this request stop after the write: the storyboard, a
        # reminder. With an Idempotency-Key another request may race for the id: its storyboard is stored once
        # the write is won (submit_job), and the same request again publishes it.
        if idempotency_key is None:
            await asyncio.to_thread(deps.store.put_json, deps.work_bucket, Keys.storyboard(job_id), board.model_dump(mode="json"))
        await deps.ledger.owe(job_id)
        record, created = await deps.ledger.create(record)
    except JobTooLarge as exc:
        if deps.access.enabled:  # refused: the place in the owner's cap goes back at once, not when it turns stale
            await deps.ledger.release(caller, job_id)
        raise ApiError(413, "job_too_large", str(exc), limit=exc.limit, size=exc.size) from None
    if not created and record.body_sha256 != digest:  # a concurrent request with the same key won
        raise ApiError(
            409,
            "idempotency_conflict",
            "this Idempotency-Key was used with another body",
            idempotency_key=idempotency_key,
            job_id=job_id,
        )
    # Publishing again (a retried request) is harmless: every event carries its Nats-Msg-Id.
    await publish_submission(board, deps=deps, job_id=job_id, owner=caller)
    return accepted(record, board.duration_s)


@router.get("/v1/jobs", response_model=JobPage, responses=responses(422))
async def list_jobs(
    request: Request,
    deps: Deps,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JobPage:
    """The caller's jobs, newest first, a page at a time."""
    caller = caller_of(request)
    owners = None if not deps.access.enabled or caller in deps.access.admins else [caller]  # admins see every owner
    total, page = await deps.ledger.list_jobs(owners, status, limit=limit, offset=offset)
    following = None
    if offset + limit < total:
        following = str(request.url.include_query_params(offset=offset + limit, limit=limit).replace(scheme="", netloc=""))
        following = following.removeprefix("//")
    return JobPage(jobs=[JobSummary.of(r) for r in page], total=total, limit=limit, offset=offset, next=following)


@router.get("/v1/jobs/{job_id}", response_model=JobView, responses=responses(404))
async def get_job(request: Request, deps: Deps, job_id: Annotated[str, JOB_ID]) -> JobView:
    """The job's ledger record: status, each segment's stage, attempt, QA verdict and timings; queue position and ETA."""
    record = await owned_job(request, deps, job_id)
    return job_view(record, await deps.ledger.eta_sample())


@router.get(
    "/v1/jobs/{job_id}/events",
    responses=responses(404)
    | {
        200: {
            "description": "server-sent events: one `change` per ledger change (id = change id), `: ping` heartbeats",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": "id: 3\nevent: change\n"
                    'data: {"id": 3, "kind": "segment.generated", "status": "running", "index": 1}\n\n',
                }
            },
        }
    },
)
async def job_events(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    last_event_id: Annotated[int, Header(ge=0, le=2**31, description="resume after this change id (0: from the start)")] = 0,
) -> EventSourceResponse:
    """Follow a job: every change of its ledger record, replayable from the start; closes at a terminal state."""
    await owned_job(request, deps, job_id)
    lease = await deps.streams.open(caller_of(request))  # 429 past REELFORGE_MAX_EVENT_STREAMS of this token, all replicas
    wake_s = min(deps.sse_heartbeat_s, deps.streams.lease_s / 3)

    async def changes() -> Any:
        try:
            sent = last_event_id
            async for record in deps.ledger.watch(job_id, heartbeat_s=wake_s):
                if lease.due() and not await lease.refresh():
                    return  # its lease ran out (this replica stalled past it): the client reconnects with Last-Event-ID
                if record is None:
                    continue  # sse-starlette sends the heartbeat comments
                for change in await deps.ledger.changes(job_id, after=sent):
                    if change.id > sent:
                        yield {"id": str(change.id), "event": "change", "data": change.model_dump_json()}
                        sent = change.id
                if record.terminal:
                    return
        finally:  # also when the client left (the task is cancelled): the place is given back in a task of its own
            closing = _closing(lease)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(closing)

    stream = changes()
    weakref.finalize(stream, _close_unstarted, lease)  # a stream whose client left before it started gives its place back
    return EventSourceResponse(stream, ping=deps.sse_heartbeat_s)


_CLOSING: set[asyncio.Task[None]] = set()  # the close tasks under way (the loop keeps only weak references)


def _closing(lease: StreamLease) -> asyncio.Task[None]:
    """Close ``lease`` in a task of its own, so that a cancelled stream cannot cut the close short."""
    task = asyncio.get_running_loop().create_task(lease.close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)
    return task


def _close_unstarted(lease: StreamLease) -> None:
    if lease.open:
        with contextlib.suppress(RuntimeError):  # no loop any more (the process is ending): the lease runs out
            _closing(lease)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobView, responses=responses(404, 409))
async def cancel_job(request: Request, deps: Deps, job_id: Annotated[str, JOB_ID]) -> JobView:
    """Cancel (idempotent): no later stage starts, the generator stops at its next batch, stored objects stay."""
    await owned_job(request, deps, job_id)
    record, _ = await deps.ledger.cancel(job_id, by=caller_of(request))
    assert record is not None  # noqa: S101 - owned_job found it; records are never removed
    if record.status != "cancelled":
        raise ApiError(409, "job_finished", f"job {job_id} is already {record.status}", status=record.status)
    await deps.bus.publish(JobCancelled(job_id=job_id, by=caller_of(request)))  # again on a retry: de-duplicated
    return job_view(record, await deps.ledger.eta_sample())


@router.post("/v1/jobs/{job_id}/segments/{index}/rerender", **NEW_VERSION)
async def rerender(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    index: SegmentNumber,
    change: Annotated[RerenderRequest, Body(examples=[{"seed": 4242}, {"prompt": "sits under the apple tree"}])],
) -> JobView:
    """Render one segment of a finished job again with a new seed and/or prompt.

    Only that segment (and the joins next to it) is rendered and encoded again, and the segments that
    continue from it (`start_from: previous`), from its new last frame; the film gets a new version and
    earlier versions stay.
    """
    record = await owned_job(request, deps, job_id)
    if change.prompt is not None and len(change.prompt) > deps.limits.field_chars:
        message = f"{len(change.prompt)} characters is above the limit {deps.limits.field_chars} (REELFORGE_MAX_FIELD_CHARS)"
        raise ApiError(422, "invalid_request", f"prompt: {message}", fields=[{"field": "prompt", "message": message}])
    if change.seed is None and change.prompt is None:
        raise ApiError(
            422,
            "invalid_request",
            "give a new seed, a new prompt, or both",
            fields=[{"field": "body", "message": "seed or prompt required"}],
        )
    refusal = None if change.prompt is None else await asyncio.to_thread(_new_prompt_refusal, deps, record, index, change.prompt)
    if why := refusal:  # longer than the segment's model reads
        raise ApiError(422, "invalid_request", f"prompt: {why}", fields=[{"field": "prompt", "message": why}])
    try:
        record = await rerender_segment(
            deps.ledger,
            deps.bus,
            deps.store,
            deps.work_bucket,
            job_id,
            index,
            seed=change.seed,
            prompt=change.prompt,
            by=caller_of(request),
            statuses=frozenset({"completed"}),
        )
    except RerenderRefused as exc:
        raise refused(exc, job_id=job_id, index=index) from None
    return job_view(record, await deps.ledger.eta_sample())


@router.put(
    "/v1/jobs/{job_id}/storyboard",
    status_code=202,
    response_model=JobView,
    responses=responses(404, 409, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": EXAMPLE_STORYBOARD},
                "application/yaml": {"schema": {"type": "string"}, "example": "segments:\n  - {id: a, prompt: runs}\n"},
            },
        }
    },
)
async def replace_storyboard(request: Request, deps: Deps, job_id: Annotated[str, JOB_ID]) -> JobView:
    """Edit a completed job's storyboard (same number of segments): the film's next version.

    Only the segments that changed are requested again, and of those only the ones whose shot key is new
    are rendered (the others reuse their frames); the film is joined again and earlier versions stay.
    The same storyboard again changes nothing.
    """
    record = await owned_job(request, deps, job_id)
    body = await request.body()  # at most REELFORGE_MAX_BODY_BYTES: the guard middleware cut it
    board, _ = await read_submission(
        body,
        limits=deps.limits,
        max_yaml_bytes=deps.max_yaml_bytes,
        timeout_s=deps.parse_timeout_s,
        allow_private=deps.webhook_allow_private,
    )
    if errors := await asyncio.to_thread(prompt_errors, board, default_model=deps.default_model):
        raise StoryboardInvalid(errors)
    board = await _staged(board, deps, caller_of(request), job_id)  # its media under the job, as at submission
    try:
        record, _ = await new_storyboard_version(
            deps.ledger, deps.bus, deps.store, deps.work_bucket, job_id, board, reuse=deps.shot_reuse, by=caller_of(request)
        )
    except RerenderRefused as exc:
        raise refused(exc, job_id=job_id) from None
    except InvalidInput as exc:
        raise ApiError(422, "invalid_request", str(exc), fields=[{"field": "segments", "message": str(exc)}]) from None
    return job_view(record, await deps.ledger.eta_sample())


@router.post("/v1/jobs/{job_id}/segments/{index}/extend", **NEW_VERSION)
async def extend(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    index: SegmentNumber,
    change: Annotated[ExtendRequest, Body(examples=[{"prompt": "climbs the apple tree", "duration_s": 4.0}])],
) -> JobView:
    """Append a segment to a completed job that continues from the last frame of its last segment (`start_from: previous`).

    Only the new segment is rendered and encoded; the film gets a new version and earlier versions stay.
    """
    await owned_job(request, deps, job_id)
    old = parse_storyboard(await asyncio.to_thread(deps.store.get_json, deps.work_bucket, Keys.storyboard(job_id)))
    if index != len(old.segments):
        message = f"a film is extended from its last segment, {len(old.segments)}; got {index}"
        raise ApiError(422, "invalid_request", f"index: {message}", fields=[{"field": "index", "message": message}])
    limits = deps.limits
    board = extended_storyboard(old, prompt=change.prompt, duration_s=change.duration_s, limits=limits)
    if errors := await asyncio.to_thread(prompt_errors, board, default_model=deps.default_model):
        raise StoryboardInvalid(errors)
    try:
        record, _ = await new_storyboard_version(
            deps.ledger,
            deps.bus,
            deps.store,
            deps.work_bucket,
            job_id,
            board,
            reuse=deps.shot_reuse,
            by=caller_of(request),
            extends=True,
        )
    except RerenderRefused as exc:
        raise refused(exc, job_id=job_id) from None
    return job_view(record, await deps.ledger.eta_sample())


@router.get(
    "/v1/jobs/{job_id}/film",
    status_code=307,
    responses=responses(404, 409)
    | {307: {"description": "redirect to a presigned URL of the latest film (or its delivery URL)"}},
)
async def film(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    version: Annotated[int | None, Query(ge=1, le=10_000, description="film version (default: latest)")] = None,
) -> RedirectResponse:
    """Redirect to the film: a presigned URL valid for REELFORGE_LINK_TTL_S (signed for REELFORGE_S3_PUBLIC_ENDPOINT)."""
    record = await owned_job(request, deps, job_id)
    key = record.films.get(version) if version else record.film_key
    if not key:
        raise ApiError(
            409,
            "film_not_ready",
            f"job {job_id} has no film{f' version {version}' if version else ''} yet",
            status=record.status,
        )
    bucket = record.delivery_bucket or deps.delivery_bucket
    if deps.store.exists(bucket, key):
        return RedirectResponse(deps.links.url(bucket, key), status_code=307)
    if record.film_url and not version:
        return RedirectResponse(record.film_url, status_code=307)  # delivered elsewhere (GitLab)
    raise ApiError(409, "film_not_ready", f"the film of job {job_id} is not in bucket {bucket!r}", key=key)


async def _staged(board: Storyboard, deps: GatewayDeps, owner: str, job_id: str) -> Storyboard:
    return await stage_media(
        board,
        owner=owner,
        job_id=job_id,
        store=deps.store,
        bucket=deps.work_bucket,
        egress=deps.egress,
        limits=deps.reference_limits,
    )


def _new_prompt_refusal(deps: GatewayDeps, record: JobRecord, index: int, prompt: str) -> str | None:
    """Why segment ``index`` with ``prompt`` would not fit its model (the one it was asked with), or None."""
    board = parse_storyboard(deps.store.get_json(deps.work_bucket, Keys.storyboard(record.job_id)))
    if not 1 <= index <= len(board.segments):
        return None  # rerender_segment says so (404)
    segments = list(board.segments)
    segments[index - 1] = segments[index - 1].model_copy(update={"prompt": prompt})
    asked = record.segments[index].model if index in record.segments else None
    errors = prompt_errors(board.model_copy(update={"segments": segments}), asked, deps.default_model)
    return next((e["message"] for e in errors if e["field"] == f"segments[{index - 1}].prompt"), None)
