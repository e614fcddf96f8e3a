"""What the API shows of a job: the ownership check, the job view with its queue position and ETA, the summaries.

:func:`owned_job` is the one place that decides whether a caller may see a job; every route that
names a job goes through it, and a job of another owner is answered like a missing one (404).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from reelforge_gateway.auth import caller_of
from reelforge_gateway.deps import GatewayDeps
from reelforge_gateway.errors import ApiError
from reelforge_shared.events import CutEntry
from reelforge_shared.jobs import LOCAL_OWNER, JobRecord, JobStatus, RenditionRecord, SegmentRecord
from reelforge_shared.jobs.eta import deadline_met, queue


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
    cut: list[CutEntry] = Field(
        default_factory=list,
        description="the latest film version's cut when an editor's timeline re-cut it (POST .../timeline): its clips in "
        "film order; empty: the storyboard's order, whole segments",
    )
    report_key: str | None
    deliverables: dict[str, str]
    qa_failed_segments: list[int]
    error: str | None
    last_event_id: int = Field(description="id of the job's latest change (the SSE event id)")
    queue_position: int | None = Field(description="1: the oldest unfinished job; null once finished")
    eta_s: float | None = Field(description="seconds left, from measured stage times; null before any is measured")
    deadline_at: Any = Field(None, description="when the job is cancelled (reason `deadline`) if not finished; null: none")
    deadline_met: bool | None = Field(
        None, description="false when the ETA ends past the deadline (it cannot be met at the measured pace); null: unknown"
    )
    renditions: dict[int, dict[str, RenditionRecord]] = Field(
        default_factory=dict, description="film version -> rendition id -> its derived rendition (POST .../renditions)"
    )


class JobSummary(BaseModel):
    job_id: str
    title: str
    status: JobStatus
    segment_count: int
    delivered: int
    created_at: Any
    updated_at: Any

    @classmethod
    def of(cls, record: JobRecord) -> JobSummary:
        return cls(
            job_id=record.job_id,
            title=record.title,
            status=record.status,
            segment_count=record.segment_count,
            delivered=record.count("delivered"),
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class JobPage(BaseModel):
    jobs: list[JobSummary]
    total: int = Field(description="jobs matching the filter")
    limit: int
    offset: int
    next: str | None = Field(description="URL of the next page; null on the last")


def visible(record: JobRecord, request: Request, deps: GatewayDeps) -> bool:
    """A token sees its own jobs; the admin scope sees every owner's, those submitted without the API included."""
    return deps.access.sees(caller_of(request), record.owner or LOCAL_OWNER)


async def owned_job(request: Request, deps: GatewayDeps, job_id: str) -> JobRecord:
    """The job, if the caller may see it; otherwise 404, the same answer as for a job that does not exist.

    Every route that names a job reads it here, so another owner's job is never told apart from a
    missing one (no 403: that would say the job exists).
    """
    record = await deps.ledger.get(job_id)
    if record is None or not visible(record, request, deps):
        raise ApiError(404, "job_not_found", f"no job {job_id!r}", job_id=job_id)
    return record


def accepted(record: JobRecord, duration_s: float) -> JSONResponse:
    body = JobAccepted(
        job_id=record.job_id,
        status=record.status,
        segments=record.segment_count,
        duration_s=duration_s,
        status_url=f"/v1/jobs/{record.job_id}",
        events_url=f"/v1/jobs/{record.job_id}/events",
    )
    return JSONResponse(status_code=202, content=body.model_dump(mode="json"), headers={"Location": body.status_url})


def job_view(record: JobRecord, records: list[JobRecord]) -> JobView:
    """The job with its queue position and ETA, judged against the unfinished jobs in ``records`` (:meth:`Ledger.eta_sample`)."""
    position, eta = queue(record, records)
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
        cut=record.cut,
        report_key=record.report_key,
        deliverables=record.deliverables,
        qa_failed_segments=record.qa_failed_segments,
        error=record.error,
        last_event_id=record.change_id,
        queue_position=position,
        eta_s=eta,
        deadline_at=record.deadline_at,
        deadline_met=deadline_met(record, eta),
        renditions=record.renditions,
    )
