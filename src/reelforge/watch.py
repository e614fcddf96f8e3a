"""Follow one job's events on the bus (a plain subscription: what a downstream user would do)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from reelforge_shared.events import (
    EVENTS_BY_SUBJECT,
    Event,
    FilmEncoded,
    JobCompleted,
    JobFailed,
    SegmentChecked,
    SegmentDelivered,
    SegmentEncoded,
    SegmentFailed,
    SegmentGenerated,
)

STAGES = {SegmentGenerated: "generated", SegmentEncoded: "encoded", SegmentChecked: "checked", SegmentDelivered: "delivered"}


@dataclass
class JobWatch:
    job_id: str
    segment_count: int
    stages: dict[str, set[int]] = field(default_factory=lambda: {s: set() for s in STAGES.values()})
    failed: dict[int, SegmentFailed] = field(default_factory=dict)
    delivered: dict[int, SegmentDelivered] = field(default_factory=dict)
    film: FilmEncoded | None = None
    completed: JobCompleted | None = None
    job_error: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def apply(self, event: Event) -> None:
        if event.job_id != self.job_id:
            return
        if stage := STAGES.get(type(event)):
            self.stages[stage].add(event.index)
        if isinstance(event, SegmentDelivered):
            self.delivered[event.index] = event
            self.failed.pop(event.index, None)
        elif isinstance(event, SegmentFailed) and event.index not in self.delivered:
            self.failed[event.index] = event
        elif isinstance(event, FilmEncoded):
            self.film = event
        elif isinstance(event, JobCompleted):
            self.completed = event
        elif isinstance(event, JobFailed):
            self.job_error = f"{event.stage}: {event.error}"
        self.changed.set()

    def on_message(self, subject: str, data: bytes) -> None:
        cls = EVENTS_BY_SUBJECT.get(subject.split(".", 1)[1])
        if cls is not None:
            self.apply(cls.model_validate_json(data))

    @property
    def settled(self) -> bool:
        """Completed, failed for good, or every segment settled with at least one failure."""
        if self.completed or self.job_error:
            return True
        return bool(self.failed) and len(self.delivered) + len(self.failed) >= self.segment_count

    @property
    def ok(self) -> bool:
        return self.completed is not None and not self.failed
