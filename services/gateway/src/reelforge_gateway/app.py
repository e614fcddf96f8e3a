"""Jobs API v1: submit, list, read, follow (server-sent events), cancel, re-render a segment, fetch the film.

Every job's state is read from and written to the job ledger (:mod:`reelforge_shared.jobs`); the
gateway keeps no copy. Every error has one shape (:mod:`reelforge_gateway.errors`). ``/v1`` needs a
bearer token and is rate limited per token (:mod:`reelforge_gateway.auth`); ``/healthz`` and
``/metrics`` are open.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import structlog
import yaml
from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from prometheus_client import make_asgi_app
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from reelforge_gateway.auth import Access, caller_of
from reelforge_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody, install_error_handlers
from reelforge_gateway.prompt_fit import prompt_errors
from reelforge_gateway.submit import new_job_id, submit_job
from reelforge_shared.bus import Bus
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import JobCancelled
from reelforge_shared.health import Health
from reelforge_shared.jobs import (
    SEGMENT_STAGES,
    Change,
    JobRecord,
    JobStatus,
    Ledger,
    RerenderRefused,
    SegmentRecord,
    rerender_segment,
    resume_job,
)
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import StoryboardInvalid, parse_storyboard
from reelforge_shared.webhooks import refuse_private

log = structlog.get_logger("reelforge.gateway")
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


@dataclass(slots=True)
class GatewayDeps:
    bus: Bus
    store: ObjectStore
    ledger: Ledger
    work_bucket: str
    max_body_bytes: int
    health: Health
    access: Access = field(default_factory=lambda: Access({}, enabled=False))
    max_jobs_in_flight: int = 10
    sse_heartbeat_s: float = 15.0
    webhook_allow_private: bool = False
    delivery_bucket: str = "f1-video-clips"
    default_model: str | None = None  # the generator's REELFORGE_MODEL: prompts of segments that name no model fit it


def get_deps(request: Request) -> GatewayDeps:
    return request.app.state.deps


Deps = Annotated[GatewayDeps, Depends(get_deps)]


class JobAccepted(BaseModel):
    job_id: str = Field(examples=["j-5f1c2e7a9b0d4e21"])
    status: JobStatus
    segments: int = Field(description="segments in the storyboard")
    duration_s: float = Field(description="film length the storyboard asks for")
    status_url: str = Field(examples=["/v1/jobs/j-5f1c2e7a9b0d4e21"])
    events_url: str = Field(examples=["/v1/jobs/j-5f1c2e7a9b0d4e21/events"])


class JobView(BaseModel):
    """A job as the ledger has it, with its place in the queue and an estimate of the time left."""

    job_id: str
    title: str
    status: JobStatus
    segment_count: int
    segments: dict[int, SegmentRecord]
    created_at: Any
    updated_at: Any
    webhook_url: str | None
    film_version: int = Field(description="film versions requested so far (a re-render adds one)")
    film_key: str | None
    films: dict[int, str] = Field(description="version -> delivery key of every film made; earlier versions stay")
    report_key: str | None
    deliverables: dict[str, str]
    qa_failed_segments: list[int]
    error: str | None
    last_event_id: int = Field(description="id of the job's latest change (the SSE event id)")
    queue_position: int | None = Field(description="1: the oldest unfinished job; null once finished")
    eta_s: float | None = Field(description="seconds left, from measured stage times; null before any is measured")


class JobSummary(BaseModel):
    job_id: str
    title: str
    status: JobStatus
    segment_count: int
    delivered: int
    created_at: Any
    updated_at: Any


class JobPage(BaseModel):
    jobs: list[JobSummary]
    total: int = Field(description="jobs matching the filter")
    limit: int
    offset: int
    next: str | None = Field(description="URL of the next page; null on the last")


class RerenderRequest(BaseModel):
    """What to change in the segment; at least one of the two."""

    seed: int | None = Field(None, ge=0, lt=2**32, description="new seed", examples=[4242])
    prompt: str | None = Field(
        None, min_length=1, max_length=4000, description="new prompt (the style and cast are still applied)"
    )


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    wanted: dict[int | str, dict[str, Any]] = {401: ERROR_RESPONSES[401], 429: ERROR_RESPONSES[429]}
    for code in codes:
        wanted[code] = ERROR_RESPONSES.get(code, {"model": ErrorBody, "description": "see `error` and `message`"})
    return wanted


def create_app(deps: GatewayDeps) -> FastAPI:
    app = FastAPI(
        title="Reelforge gateway",
        version="1",
        description="Jobs API v1: a storyboard in, a checked film out. Bearer tokens on /v1 and /api; errors share one shape.",
        dependencies=[Depends(deps.access.guard)],
    )
    app.state.deps = deps
    app.mount("/metrics", make_asgi_app())
    install_error_handlers(app)

    @app.middleware("http")
    async def log_request(request: Request, call_next: Any) -> Any:
        """One line per API call naming the caller (the token's name, never the token)."""
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path.startswith(("/v1/", "/api/")):
            log.info(
                "api.request",
                caller=getattr(request.state, "caller", None),
                method=request.method,
                path=request.url.path,
                status=response.status_code,
                seconds=round(time.perf_counter() - started, 3),
            )
        return response

    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobAccepted,
        responses=_responses(409, 413, 422),
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
        body = await _read_body(request, deps.max_body_bytes)
        board, webhook_url = _parse_submission(body, deps.webhook_allow_private)
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
                await submit_job(board, bus=deps.bus, store=deps.store, bucket=deps.work_bucket, job_id=job_id)
            elif existing.status == "failed" or (existing.resume and not existing.terminal):
                # failed (an outage past the tolerance): resume from the work stored; a resume under way: publish again
                existing = await resume_job(deps.ledger, deps.bus, board, job_id, by=caller) or existing
            return _accepted(existing, board.duration_s)
        if deps.access.enabled:
            in_flight = sum(1 for r in await deps.ledger.all() if r.owner == caller and not r.terminal)
            if in_flight >= deps.max_jobs_in_flight:
                message = f"{in_flight} jobs of {caller!r} are unfinished (at most {deps.max_jobs_in_flight})"
                raise ApiError(
                    429, "queue_full", message, headers={"Retry-After": "60"}, in_flight=in_flight, limit=deps.max_jobs_in_flight
                )
        record = JobRecord(
            job_id=job_id,
            title=board.title,
            segment_count=len(board.segments),
            owner=caller,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
            body_sha256=digest,
        )
        record, created = await deps.ledger.create(record)
        if not created and record.body_sha256 != digest:  # a concurrent request with the same key won
            raise ApiError(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was used with another body",
                idempotency_key=idempotency_key,
                job_id=job_id,
            )
        # Publishing again (a retried request) is harmless: every event carries its Nats-Msg-Id.
        await submit_job(board, bus=deps.bus, store=deps.store, bucket=deps.work_bucket, job_id=job_id)
        return _accepted(record, board.duration_s)

    @app.get("/v1/jobs", response_model=JobPage, responses=_responses(422))
    async def list_jobs(
        request: Request,
        deps: Deps,
        status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> JobPage:
        """The caller's jobs, newest first, a page at a time."""
        records = [
            r for r in reversed(await deps.ledger.all()) if _visible(r, request, deps) and (status is None or r.status == status)
        ]
        page = records[offset : offset + limit]
        following = None
        if offset + limit < len(records):
            following = str(request.url.include_query_params(offset=offset + limit, limit=limit).replace(scheme="", netloc=""))
            following = following.removeprefix("//")
        return JobPage(
            jobs=[
                JobSummary(
                    job_id=r.job_id,
                    title=r.title,
                    status=r.status,
                    segment_count=r.segment_count,
                    delivered=sum(s.stage == "delivered" for s in r.segments.values()),
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                )
                for r in page
            ],
            total=len(records),
            limit=limit,
            offset=offset,
            next=following,
        )

    @app.get("/v1/jobs/{job_id}", response_model=JobView, responses=_responses(404))
    async def get_job(request: Request, deps: Deps, job_id: Annotated[str, JOB_ID]) -> JobView:
        """The job's ledger record: status, each segment's stage, attempt, QA verdict and timings; queue position and ETA."""
        record = await _job(request, deps, job_id)
        return _view(record, await deps.ledger.all())

    @app.get(
        "/v1/jobs/{job_id}/events",
        responses=_responses(404)
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
        await _job(request, deps, job_id)

        async def changes() -> Any:
            sent = last_event_id
            async for record in deps.ledger.watch(job_id, heartbeat_s=deps.sse_heartbeat_s):
                if record is None:
                    continue  # sse-starlette sends the heartbeat comments
                for change in record.changes:
                    if change.id > sent:
                        yield {"id": str(change.id), "event": "change", "data": change.model_dump_json()}
                        sent = change.id
                if record.terminal:
                    return

        return EventSourceResponse(changes(), ping=deps.sse_heartbeat_s)

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobView, responses=_responses(404, 409))
    async def cancel_job(request: Request, deps: Deps, job_id: Annotated[str, JOB_ID]) -> JobView:
        """Cancel (idempotent): no later stage starts, the generator stops at its next batch, stored objects stay."""
        await _job(request, deps, job_id)
        record, _ = await deps.ledger.cancel(job_id, by=caller_of(request))
        assert record is not None  # noqa: S101 - _job found it; records are never removed
        if record.status != "cancelled":
            raise ApiError(409, "job_finished", f"job {job_id} is already {record.status}", status=record.status)
        await deps.bus.publish(JobCancelled(job_id=job_id, by=caller_of(request)))  # again on a retry: de-duplicated
        return _view(record, await deps.ledger.all())

    @app.post(
        "/v1/jobs/{job_id}/segments/{index}/rerender",
        status_code=202,
        response_model=JobView,
        responses=_responses(404, 409, 422),
    )
    async def rerender(
        request: Request,
        deps: Deps,
        job_id: Annotated[str, JOB_ID],
        index: Annotated[int, Path(ge=1, le=10_000, description="1-based segment number")],
        change: Annotated[RerenderRequest, Body(examples=[{"seed": 4242}, {"prompt": "sits under the apple tree"}])],
    ) -> JobView:
        """Render one segment of a finished job again with a new seed and/or prompt.

        Only that segment (and the joins next to it) is rendered and encoded again; the film gets a
        new version and earlier versions stay.
        """
        record = await _job(request, deps, job_id)
        if change.seed is None and change.prompt is None:
            raise ApiError(
                422,
                "invalid_request",
                "give a new seed, a new prompt, or both",
                fields=[{"field": "body", "message": "seed or prompt required"}],
            )
        refusal = (
            None if change.prompt is None else await asyncio.to_thread(_new_prompt_refusal, deps, record, index, change.prompt)
        )
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
            status = 404 if exc.code.endswith("not_found") else 409
            raise ApiError(status, exc.code, str(exc), job_id=job_id, index=index) from None
        return _view(record, await deps.ledger.all())

    @app.get(
        "/v1/jobs/{job_id}/film",
        status_code=307,
        responses=_responses(404, 409)
        | {307: {"description": "redirect to a presigned URL of the latest film (or its delivery URL)"}},
    )
    async def film(
        request: Request,
        deps: Deps,
        job_id: Annotated[str, JOB_ID],
        version: Annotated[int | None, Query(ge=1, le=10_000, description="film version (default: latest)")] = None,
    ) -> RedirectResponse:
        """Redirect to the film (a presigned URL valid for an hour)."""
        record = await _job(request, deps, job_id)
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
            return RedirectResponse(deps.store.url(bucket, key, expires=timedelta(hours=1)), status_code=307)
        if record.film_url and not version:
            return RedirectResponse(record.film_url, status_code=307)  # delivered elsewhere (GitLab)
        raise ApiError(409, "film_not_ready", f"the film of job {job_id} is not in bucket {bucket!r}", key=key)

    @app.get("/healthz", include_in_schema=True)
    async def healthz(deps: Deps) -> JSONResponse:
        return JSONResponse(status_code=200 if deps.health.ok else 503, content=deps.health.as_dict())

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(
                413,
                "too_large",
                f"the body is more than {limit} bytes",
                fields=[{"field": "body", "message": f"more than {limit} bytes"}],
            )
    return body


def _parse_submission(body: bytes, allow_private: bool) -> tuple[Any, str | None]:
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise StoryboardInvalid([{"field": "storyboard", "message": f"not valid YAML or JSON: {exc}"}]) from None
    webhook_url = None
    if isinstance(data, dict) and "webhook_url" in data:
        webhook_url = data.pop("webhook_url")
        if not isinstance(webhook_url, str):
            raise StoryboardInvalid([{"field": "webhook_url", "message": f"expected a URL, got {webhook_url!r}"[:300]}])
        try:
            refuse_private(webhook_url, allow_private)
        except InvalidInput as exc:
            raise StoryboardInvalid([{"field": "webhook_url", "message": str(exc)}]) from None
    return parse_storyboard(data), webhook_url


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


def _accepted(record: JobRecord, duration_s: float) -> JSONResponse:
    body = JobAccepted(
        job_id=record.job_id,
        status=record.status,
        segments=record.segment_count,
        duration_s=duration_s,
        status_url=f"/v1/jobs/{record.job_id}",
        events_url=f"/v1/jobs/{record.job_id}/events",
    )
    return JSONResponse(status_code=202, content=body.model_dump(mode="json"), headers={"Location": body.status_url})


def _visible(record: JobRecord, request: Request, deps: GatewayDeps) -> bool:
    """A token sees its own jobs and those submitted without the API (CLI, straight onto the bus)."""
    return not deps.access.enabled or record.owner is None or record.owner == caller_of(request)


async def _job(request: Request, deps: GatewayDeps, job_id: str) -> JobRecord:
    record = await deps.ledger.get(job_id)
    if record is None or not _visible(record, request, deps):
        raise ApiError(404, "job_not_found", f"no job {job_id!r}", job_id=job_id)
    return record


def _stage_means(records: list[JobRecord]) -> tuple[dict[str, float], float | None]:
    """Mean measured seconds per segment stage over every record, and per film (request to completion)."""
    sums: dict[str, list[float]] = {}
    for record in records:
        for seg in record.segments.values():
            for stage, seconds in seg.stage_seconds().items():
                sums.setdefault(stage, []).append(seconds)
    films = [f for r in records if (f := _film_seconds(r.changes)) is not None]
    return {s: sum(v) / len(v) for s, v in sums.items()}, (sum(films) / len(films) if films else None)


def _film_seconds(changes: list[Change]) -> float | None:
    start = next((c.at for c in changes if c.status == "film_encoding"), None)
    end = next((c.at for c in reversed(changes) if c.status == "completed"), None)
    return (end - start).total_seconds() if start and end and end > start else None


def _remaining_s(record: JobRecord, means: dict[str, float], film_s: float | None) -> float:
    total = 0.0
    for n in range(1, record.segment_count + 1):
        seg = record.segments.get(n)
        reached = SEGMENT_STAGES.index(seg.stage) if seg is not None and seg.stage in SEGMENT_STAGES else 0
        total += sum(means.get(stage, 0.0) for stage in SEGMENT_STAGES[reached + 1 :])
    if record.status not in {"completed"} and film_s is not None:
        total += film_s
    return total


def _view(record: JobRecord, records: list[JobRecord]) -> JobView:
    position = eta = None
    if not record.terminal:
        ahead = [r for r in records if not r.terminal and (r.created_at, r.job_id) < (record.created_at, record.job_id)]
        position = len(ahead) + 1
        means, film_s = _stage_means(records)
        if means:
            eta = math.ceil(sum(_remaining_s(r, means, film_s) for r in [*ahead, record]) * 10) / 10
    return JobView(
        job_id=record.job_id,
        title=record.title,
        status=record.status,
        segment_count=record.segment_count,
        segments=record.segments,
        created_at=record.created_at,
        updated_at=record.updated_at,
        webhook_url=record.webhook_url,
        film_version=record.film_version,
        film_key=record.film_key,
        films=record.films,
        report_key=record.report_key,
        deliverables=record.deliverables,
        qa_failed_segments=record.qa_failed_segments,
        error=record.error,
        last_event_id=record.change_id,
        queue_position=position,
        eta_s=eta,
    )
