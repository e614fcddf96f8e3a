"""A job's record: what the job store keeps about one job (its head, its segments, its changes).

Plain data: the transitions that move it are in :mod:`reelforge_shared.jobs.transitions`, the
repository that stores it in :mod:`reelforge_shared.jobs.store`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from reelforge_shared.events import FilmRequested, RenderSpec

JobStatus = Literal["queued", "running", "film_encoding", "film_checking", "delivering", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
SegmentStage = Literal["queued", "generated", "encoded", "checked", "delivered", "failed"]
SEGMENT_STAGES: tuple[str, ...] = ("queued", "generated", "encoded", "checked", "delivered")


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
