"""Job state: the one package that owns a job's record.

- :mod:`.record`: the record (head, segments, changes) as plain data.
- :mod:`.transitions`: pure functions that move a record (fold an event, re-render, resume, cancel).
- :mod:`.store`: the KV repository (:class:`Ledger`): compare-and-set reads and writes, watch.
- :mod:`.observer`: the bus routes that fold every job event into the store.
- :mod:`.actions`: re-render and resume against the store and the bus.
"""

from reelforge_shared.jobs.actions import RERENDERABLE, RerenderRefused, plan_rerender, rerender_segment, resume_job
from reelforge_shared.jobs.observer import observer_routes
from reelforge_shared.jobs.record import (
    LOCAL_OWNER,
    SEGMENT_STAGES,
    TERMINAL,
    Change,
    JobRecord,
    JobStatus,
    RenditionRecord,
    SegmentRecord,
    SegmentStage,
)
from reelforge_shared.jobs.store import (
    BUCKET,
    CancelCheck,
    JobTooLarge,
    Ledger,
    LedgerConflict,
    observe_finished,
)
from reelforge_shared.jobs.transitions import OBSERVED_EVENTS, fold

__all__ = [
    "BUCKET",
    "OBSERVED_EVENTS",
    "RERENDERABLE",
    "SEGMENT_STAGES",
    "TERMINAL",
    "CancelCheck",
    "Change",
    "JobRecord",
    "JobStatus",
    "JobTooLarge",
    "LOCAL_OWNER",
    "Ledger",
    "LedgerConflict",
    "RenditionRecord",
    "RerenderRefused",
    "SegmentRecord",
    "SegmentStage",
    "fold",
    "observe_finished",
    "observer_routes",
    "plan_rerender",
    "rerender_segment",
    "resume_job",
]
