"""A job's record: what the job store keeps about one job (its head, its segments, its changes).

Plain data: the transitions that move it are in :mod:`reelforge_shared.jobs.transitions`, the
repository that stores it in :mod:`reelforge_shared.jobs.store`.

In memory a :class:`JobRecord` is the head with the segments loaded (all of them for a job view,
only those a transition touches inside the store) and the changes this process appended; stored,
the head, each segment and each change are values of their own, so no value grows with the number
of events, and with the number of segments only by the one letter per segment of :attr:`JobRecord.stages`
(and an entry of :attr:`JobRecord.attempts` per segment rendered again).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from reelforge_shared.events import CutEntry, Event, FilmRequested, RenderSpec, ReusedFrom
from reelforge_shared.owner import LOCAL_OWNER

JobStatus = Literal["queued", "running", "film_encoding", "film_checking", "delivering", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
SegmentStage = Literal["queued", "generated", "encoded", "checked", "delivered", "failed"]
SEGMENT_STAGES: tuple[str, ...] = ("queued", "generated", "encoded", "checked", "delivered")
STAGE_LETTER = {"queued": "q", "generated": "g", "encoded": "e", "checked": "c", "delivered": "d", "failed": "f"}
MAX_RENDITIONS = 64  # derived renditions a job keeps at once (every film version together): the head stays small
_LETTER_RANK = {STAGE_LETTER[stage]: rank for rank, stage in enumerate(SEGMENT_STAGES)}


def _now() -> datetime:
    return datetime.now(UTC)


class TakeRecord(BaseModel):
    """One take of a segment with several (reelforge_shared.takes): its render, its QA verdict, and why it won or lost."""

    take: int
    stage: SegmentStage = "queued"
    seed: int | None = None
    prompt: str | None = Field(None, description="the prompt as composed for the take (a variant's for a variant)")
    shot_key: str | None = None
    reused_from: ReusedFrom | None = None
    qa_passed: bool | None = None
    qa_scores: dict[str, float] = Field(default_factory=dict)
    qa_failed_gates: list[str] = Field(default_factory=list)
    continuity: float | None = Field(
        None, description="mean continuity against the job's cast and location references (None: none); the take policy reads it"
    )
    references: dict[str, float | None] = Field(
        default_factory=dict,
        description="kind:name -> the take's continuity against that reference (cast sheet or reference_image)",
    )
    video_key: str | None = None
    won: bool | None = Field(None, description="in the film (set once every take is checked, or by a select)")
    reason: str | None = Field(None, description="why it won or lost")


class RenditionRecord(BaseModel):
    """A derived rendition of a film version (``POST .../renditions``): what it is, where it stands, where it is stored."""

    id: str = Field(description="the rendition's id (a hash of its kind and parameters)", examples=["3f9a0c1e7b2d4a68"])
    kind: str = Field(description="speed, audio, frames, loop, trim or subtitles", examples=["speed"])
    params: dict[str, Any] = Field(description="its parameters (the request without its kind)", examples=[{"factor": 2.0}])
    status: Literal["pending", "ready", "failed"] = Field("pending", description="pending until the encoder has made it")
    key: str | None = Field(None, description="its object in the work bucket, once made")
    size_bytes: int | None = Field(None, description="its size, once made")
    error: str | None = Field(None, description="why it could not be made")
    request: int = Field(description="the job's number for this request (asked again after a delete: a new one)")
    created_at: datetime = Field(default_factory=_now, description="when it was asked for")


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
    shot_key: str | None = Field(None, description="the current attempt's shot key (reelforge_shared.shots)")
    reused_from: ReusedFrom | None = Field(None, description="set: the current attempt reuses this earlier render's frames")
    resume: int = Field(0, description="the job's resume that last queued this segment again (0: never)")
    reached: dict[str, datetime] = Field(default_factory=dict, description="stage -> when the current attempt reached it")
    version: int = Field(0, description="the job change that last wrote this segment (the store's write-if-newer)")
    take: int = Field(0, description="the take in the film")
    takes: dict[int, TakeRecord] = Field(default_factory=dict, description="take -> its record (a segment with several takes)")

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
    owner: str | None = Field(
        LOCAL_OWNER, description="name of the API token that submitted it; `local` for the CLI and events put on the bus"
    )
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
    stages: str = Field("", description="one letter per segment, its stage: q g e c d f (- not requested yet)")
    attempts: dict[int, int] = Field(
        default_factory=dict, description="segment -> its current attempt, for those past their first (the attempt the film uses)"
    )
    film_takes: dict[int, int] = Field(
        default_factory=dict,
        description="segment -> its take in the film, for those whose take is not 0 (reelforge_shared.takes)",
    )
    renditions: dict[int, dict[str, RenditionRecord]] = Field(
        default_factory=dict, description="film version -> rendition id -> its derived rendition (at most MAX_RENDITIONS)"
    )
    renditions_asked: int = Field(0, description="renditions asked for so far (each request's number; deletes do not lower it)")
    cut: list[CutEntry] = Field(
        default_factory=list,
        description="the latest film version's cut when an editor's timeline re-cut it (film order, trims, removals, "
        "earlier attempts; events.CutEntry); empty: the storyboard's order, whole segments. Each version's cut travels "
        "in its film events and is kept in its report.json",
    )
    change_id: int = Field(0, description="id of the latest change (the SSE event id)")
    status_at: dict[str, datetime] = Field(default_factory=dict, description="status -> when the job first reached it")
    finished_at: datetime | None = Field(None, description="when it reached a terminal status (retention counts from here)")
    last_delivery_at: datetime | None = Field(None, description="when its latest segment delivery happened")
    stage_sums: dict[str, tuple[float, int]] = Field(
        default_factory=dict, description="segment stage -> (seconds summed over the segments that went through it, how many)"
    )
    deadline_at: datetime | None = Field(None, description="cancelled with reason `deadline` if not finished by then")
    cancel_reason: str | None = Field(None, description="why it was cancelled: `deadline`, or unset (asked for)")
    changes: list[Change] = Field(default_factory=list, description="changes appended in memory (the store keeps each apart)")
    _outbox: list[Event] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: object, /) -> None:
        self.sync_stages()

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def sync_stages(self) -> None:
        """Bring :attr:`stages` up to date with the segments loaded (the ones that may have changed)."""
        width = max(self.segment_count, len(self.stages), max(self.segments, default=0))
        letters = list(self.stages.ljust(width, "-"))
        for index, seg in self.segments.items():
            if index >= 1:
                letters[index - 1] = STAGE_LETTER[seg.stage]
                if seg.attempt > 1:
                    self.attempts[index] = seg.attempt
                else:
                    self.attempts.pop(index, None)
                if seg.take:
                    self.film_takes[index] = seg.take
                else:
                    self.film_takes.pop(index, None)
        self.stages = "".join(letters)

    def count(self, stage: str) -> int:
        """Segments at ``stage`` (from the summary: no segment needs to be loaded)."""
        self.sync_stages()
        return self.stages.count(STAGE_LETTER[stage])

    def count_reached(self, stage: str) -> int:
        """Segments at ``stage`` or past it (failed ones not counted)."""
        self.sync_stages()
        rank = SEGMENT_STAGES.index(stage)
        return sum(1 for letter in self.stages if letter in _LETTER_RANK and _LETTER_RANK[letter] >= rank)

    def all_delivered(self) -> bool:
        self.sync_stages()
        return self.segment_count > 0 and self.stages[: self.segment_count] == "d" * self.segment_count

    def record(self, kind: str, index: int | None = None, stage: str | None = None, detail: str | None = None) -> None:
        """Append a change (call after altering the record)."""
        self.sync_stages()
        self.updated_at = _now()
        self.change_id += 1
        self.status_at.setdefault(self.status, self.updated_at)
        if self.terminal and self.finished_at is None:
            self.finished_at = self.updated_at
        self.changes.append(
            Change(id=self.change_id, at=self.updated_at, kind=kind, status=self.status, index=index, stage=stage, detail=detail)
        )

    def emit(self, event: Event) -> None:
        """An event this change implies: the store publishes it with the write (its outbox), or repairs it later."""
        self._outbox.append(event)

    @property
    def outbox(self) -> list[Event]:
        return list(self._outbox)

    def delivered_attempts(self) -> list[int]:
        """Each segment's current attempt, in order: once every segment is delivered, the takes the film is made of."""
        self.sync_stages()
        return [self.attempts.get(n, 1) for n in range(1, self.segment_count + 1)]

    def film_request(self) -> FilmRequested:
        """The film's next version: each segment's delivered attempt and take, or, with a cut, the ones its entries name."""
        attempts, takes = self.delivered_attempts(), self.chosen_takes()
        if self.cut:
            takes = takes or [0] * self.segment_count
            for entry in self.cut:
                attempts[entry.index - 1], takes[entry.index - 1] = entry.attempt, entry.take
            takes = takes if any(takes) else []
        return FilmRequested(
            job_id=self.job_id,
            segment_count=self.segment_count,
            version=self.film_version,
            resume=self.resume,
            attempts=attempts,
            chosen_takes=takes,
            cut=list(self.cut),
        )

    def chosen_takes(self) -> list[int]:
        """Each segment's take in the film, in order; empty when every one is take 0 (reelforge_shared.takes)."""
        self.sync_stages()
        takes = [self.film_takes.get(n, 0) for n in range(1, self.segment_count + 1)]
        return takes if any(takes) else []
