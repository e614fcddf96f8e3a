"""Queue position and ETA of a job, from job heads (no segment is loaded): :meth:`Ledger.eta_sample`.

The seconds a segment stage takes are the means measured over the sample (each head sums its own
segments' stage times); the film's own step is the mean of the films finished among them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from reelforge_shared.jobs.record import _LETTER_RANK, SEGMENT_STAGES, JobRecord


def stage_means(records: list[JobRecord]) -> dict[str, float]:
    """Mean measured seconds per segment stage over the records' segments."""
    sums: dict[str, tuple[float, int]] = {}
    for record in records:
        measured = record.stage_sums or {  # a record built in memory with its segments' timings
            stage: (seconds, 1) for seg in record.segments.values() for stage, seconds in seg.stage_seconds().items()
        }
        for stage, (total, count) in measured.items():
            have = sums.get(stage, (0.0, 0))
            sums[stage] = (have[0] + total, have[1] + count)
    return {stage: total / count for stage, (total, count) in sums.items() if count}


def film_seconds(record: JobRecord) -> float | None:
    """Seconds from the film's request to the job's completion, where both happened."""
    start, end = record.status_at.get("film_encoding"), record.status_at.get("completed")
    return (end - start).total_seconds() if start and end and end > start else None


def remaining_s(record: JobRecord, means: dict[str, float], film_s: float | None) -> float:
    """Seconds of work left in the job at the measured means."""
    total = 0.0
    letters = record.stages.ljust(record.segment_count, "-")
    for letter in letters[: record.segment_count]:
        reached = _LETTER_RANK.get(letter, 0)
        total += sum(means.get(stage, 0.0) for stage in SEGMENT_STAGES[reached + 1 :])
    if record.status != "completed" and film_s is not None:
        total += film_s
    return total


def queue(record: JobRecord, active: list[JobRecord]) -> tuple[int | None, float | None]:
    """(queue position from 1, ETA in seconds) of an unfinished job among the unfinished ``active``; None, None if finished."""
    if record.terminal:
        return None, None
    ahead = [r for r in active if not r.terminal and (r.created_at, r.job_id) < (record.created_at, record.job_id)]
    means = stage_means([*active, record])
    films = [f for r in active if (f := film_seconds(r)) is not None]
    film_s = sum(films) / len(films) if films else None
    eta = math.ceil(sum(remaining_s(r, means, film_s) for r in [*ahead, record]) * 10) / 10 if means else None
    return len(ahead) + 1, eta


def deadline_met(record: JobRecord, eta_s: float | None, now: datetime | None = None) -> bool | None:
    """Whether an unfinished job with a deadline ends before it at the ETA; None without a deadline or an ETA."""
    if record.deadline_at is None or eta_s is None or record.terminal:
        return None
    return (now or datetime.now(UTC)) + timedelta(seconds=eta_s) <= record.deadline_at
