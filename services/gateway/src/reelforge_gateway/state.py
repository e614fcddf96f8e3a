"""Job state: one JSON document per job in a JetStream key-value bucket, advanced by bus events.

The tracker consumes every event of a job and moves each segment forward (never back: a late
redelivery of an earlier stage does not undo a later one). Updates are compare-and-set on the
entry's revision, so several gateway replicas can track together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from reelforge_shared.events import (
    Event,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    SegmentChecked,
    SegmentDelivered,
    SegmentEncoded,
    SegmentFailed,
    SegmentGenerated,
    SegmentRequested,
)

SegmentStage = Literal["queued", "generated", "encoded", "checked", "delivered", "failed"]
_RANK = {"queued": 0, "generated": 1, "encoded": 2, "checked": 3, "delivered": 4, "failed": 5}
_STAGE_OF = {
    SegmentRequested: "queued", SegmentGenerated: "generated", SegmentEncoded: "encoded",
    SegmentChecked: "checked", SegmentDelivered: "delivered", SegmentFailed: "failed",
}
TRACKED_EVENTS = (JobSubmitted, *_STAGE_OF, JobCompleted, JobFailed)


class SegmentStatus(BaseModel):
    index: int
    id: str
    status: SegmentStage = "queued"
    attempt: int = 1
    qa_passed: bool | None = None
    delivery_key: str | None = None
    error: str | None = None


class JobStatus(BaseModel):
    job_id: str
    title: str = ""
    status: Literal["running", "completed", "failed"] = "running"
    segment_count: int = 0
    segments: dict[int, SegmentStatus] = Field(default_factory=dict)
    film_key: str | None = None
    film_url: str | None = None
    report_key: str | None = None
    error: str | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def apply(self, event: Event) -> None:
        if isinstance(event, JobSubmitted):
            self.title, self.segment_count = event.title, event.segment_count
        elif isinstance(event, JobCompleted):
            self.status, self.film_key, self.film_url = "completed", event.film_key, event.film_url
            self.report_key = event.report_key
        elif isinstance(event, JobFailed):
            self.status, self.error = "failed", f"{event.stage}: {event.error}"
        elif stage := _STAGE_OF.get(type(event)):
            seg = self.segments.setdefault(event.index, SegmentStatus(index=event.index, id=event.segment_id))
            # Stages only move forward, except that a regeneration (a higher attempt) starts the segment over.
            if event.attempt > seg.attempt or (event.attempt == seg.attempt and _RANK[stage] >= _RANK[seg.status]):
                seg.status, seg.attempt = stage, event.attempt
            if isinstance(event, SegmentChecked | SegmentDelivered):
                seg.qa_passed = event.qa.passed
            if isinstance(event, SegmentDelivered):
                seg.delivery_key = event.delivery_key
            if isinstance(event, SegmentFailed):
                seg.error = f"{event.stage}: {event.error}"
                if self.status == "running":
                    self.status, self.error = "failed", f"segment {event.index} ({event.segment_id}) failed in {event.stage}"
        self.updated_at = datetime.now(UTC)


async def read_status(kv: KeyValue, job_id: str) -> JobStatus | None:
    try:
        entry = await kv.get(job_id)
    except KeyNotFoundError:
        return None
    return JobStatus.model_validate_json(entry.value) if entry.value else None


async def apply_event(kv: KeyValue, event: Event) -> JobStatus:
    """Compare-and-set the job's document with the event applied; retried when a peer got there first."""
    for _ in range(20):
        try:
            entry = await kv.get(event.job_id)
            status, revision = JobStatus.model_validate_json(entry.value), entry.revision
        except KeyNotFoundError:
            status, revision = JobStatus(job_id=event.job_id), None
        status.apply(event)
        payload = status.model_dump_json().encode()
        try:
            if revision is None:
                await kv.create(event.job_id, payload)
            else:
                await kv.update(event.job_id, payload, last=revision)
            return status
        except KeyWrongLastSequenceError:
            continue
    raise RuntimeError(f"job {event.job_id}: state kept changing under 20 updates")
