"""Re-render one segment of a job: the one path for the API's re-render and for continuity-driven regeneration.

:func:`rerender_segment` (a coroutine) does it from anywhere that holds the ledger, the bus and the
store: it checks the job in the ledger, moves the segment to a new attempt there (compare-and-set),
and publishes ``segment.requested`` for that attempt with the new seed and/or prompt (the style,
cast and location of the storyboard still apply). From a handler, return a
:class:`~reelforge_shared.events.SegmentRerenderRequested` event instead: the gateway's route for it
calls this function.

What follows is the ordinary flow: the generator renders the new attempt beside the old one, the
encoder encodes it (only its own pieces: the joins next to it are cut again when the film is
assembled), QA checks it, the uploader delivers it; the ledger, seeing every segment delivered again,
requests the film's next version (``film.requested`` with ``version`` + 1). Film versions have keys of
their own (``Keys.film(job, version)``), so earlier films stay.

:func:`resume_job` is the other way a segment is requested again: a job that FAILED (an outage past
``REELFORGE_OUTAGE_TOLERANCE_S``, a segment dead-lettered) resumes from the work already stored. Its
failed segments are requested again with the SAME attempt (same keys: the generator renders only the
frames not stored, the encoder, QA and uploader skip what they find), under the job's next ``resume``
number, which every event of the resumed run carries (:meth:`Event.follow`) and which is part of
every de-duplication id, so the bus takes them as new events. Delivered segments are left alone; a
job that failed after every segment was delivered requests its film again.
"""

from __future__ import annotations

from typing import Any

from reelforge_shared.errors import InvalidInput, PermanentError
from reelforge_shared.events import Event, SegmentRequested
from reelforge_shared.ledger import JobRecord, Ledger, SegmentRecord
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, parse_storyboard

RERENDERABLE = frozenset({"film_encoding", "film_checking", "delivering", "completed"})  # every segment delivered


class RerenderRefused(PermanentError):
    """The job or segment cannot be re-rendered now; ``code`` says why (job_not_finished, segment_not_found)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def rerender_segment(
    ledger: Ledger,
    bus: Any,
    store: ObjectStore,
    bucket: str,
    job_id: str,
    index: int,
    *,
    seed: int | None = None,
    prompt: str | None = None,
    by: str | None = None,
    statuses: frozenset[str] = RERENDERABLE,
    references: tuple[str, ...] = (),
) -> JobRecord:
    """Render segment ``index`` of ``job_id`` again (new ``seed`` and/or ``prompt``); the updated record.

    Refused (:class:`RerenderRefused`) unless the job's status is in ``statuses`` (by default: every
    segment delivered; the API passes ``{"completed"}``) and the segment exists.
    """
    record, request = await plan_rerender(
        ledger, store, bucket, job_id, index, seed=seed, prompt=prompt, by=by, statuses=statuses, references=references
    )
    await bus.publish(request)
    return record


async def plan_rerender(
    ledger: Ledger,
    store: ObjectStore,
    bucket: str,
    job_id: str,
    index: int,
    *,
    seed: int | None = None,
    prompt: str | None = None,
    by: str | None = None,
    statuses: frozenset[str] = RERENDERABLE,
    references: tuple[str, ...] = (),
) -> tuple[JobRecord, SegmentRequested]:
    """:func:`rerender_segment` without the publish: the ledger moved, and the ``segment.requested`` to publish.

    ``references`` (work-bucket keys of images, e.g. continuity QA's frame of the best-matching segment)
    steer the new render after the cast's own reference images, where the model takes references.
    """
    if seed is None and prompt is None:
        raise InvalidInput("rerender: give a new seed, a new prompt, or both")
    board = parse_storyboard(store.get_json(bucket, Keys.storyboard(job_id)))
    if not 1 <= index <= len(board.segments):
        raise RerenderRefused("segment_not_found", f"job {job_id} has segments 1 to {len(board.segments)}, not {index}")
    segment = board.segments[index - 1]
    if prompt is not None:
        segment = segment.model_copy(update={"prompt": prompt})
        board = board.model_copy(update={"segments": [*board.segments[: index - 1], segment, *board.segments[index:]]})
    spec = render_spec(board, index)
    if seed is not None:
        spec = spec.model_copy(update={"seed": seed})
    if references:
        spec = spec.model_copy(update={"reference_images": [*spec.reference_images, *references]})

    def move(record: JobRecord) -> tuple[int, str | None] | str:
        if record.status not in statuses:
            return record.status
        old = record.segments.get(index) or SegmentRecord(index=index, id=segment.id)
        attempt = old.attempt + 1
        record.segments[index] = SegmentRecord(index=index, id=segment.id, attempt=attempt, model=old.model)
        record.status, record.film_wanted, record.error = "running", True, None
        changes = (("seed", seed), ("prompt", prompt), ("reference", ", ".join(references) or None))
        what = ", ".join(f"{k} {v!r}" for k, v in changes if v is not None)
        detail = f"attempt {attempt}: {what}" + (f" by {by}" if by else "")
        record.record("segment.rerender", index=index, stage="queued", detail=detail)
        return attempt, old.model

    record, moved = await ledger.update(job_id, move)
    if record is None:
        raise RerenderRefused("job_not_found", f"no job {job_id!r}")
    if isinstance(moved, str):
        message = f"job {job_id} is {moved}; a segment can be re-rendered once the job is finished"
        raise RerenderRefused("job_not_finished", message)
    attempt, model = moved
    return record, SegmentRequested(
        job_id=job_id, index=index, segment_id=segment.id, attempt=attempt, spec=spec, model=model, resume=record.resume
    )


def _resume_events(record: JobRecord, board: Storyboard) -> list[Event]:
    """What the job's current resume requests: its re-queued segments not yet past "queued", or its film."""
    if record.resume == 0 or record.terminal:
        return []
    if record.status == "film_encoding" and record.all_delivered():
        return [record.film_request()]
    events: list[Event] = []
    for index, seg in sorted(record.segments.items()):
        if seg.resume == record.resume and seg.stage == "queued" and 1 <= index <= len(board.segments):
            spec = seg.spec or render_spec(board, index)
            events.append(
                SegmentRequested(
                    job_id=record.job_id,
                    index=index,
                    segment_id=seg.id,
                    attempt=seg.attempt,
                    spec=spec,
                    model=seg.model,
                    resume=record.resume,
                )
            )
    return events


async def resume_job(ledger: Ledger, bus: Any, board: Storyboard, job_id: str, *, by: str | None = None) -> JobRecord | None:
    """Resume a failed job from the work already stored; the updated record (None: no such job).

    Compare-and-set in the ledger first (one resume per failure, however many requests race), then
    the publishes. A job that is not failed is not moved; if it is running a resume whose publishes
    may not all have gone out (the request that moved it stopped in between), they go out again
    (the same de-duplication ids: the bus drops what it already has).
    """

    def move(record: JobRecord) -> None:
        if record.status != "failed":
            return
        record.resume += 1
        queued = []
        for index in range(1, record.segment_count + 1):
            seg = record.segments.get(index)
            if seg is not None and seg.stage != "failed":
                continue  # delivered, or still on its way in the run that failed: left alone
            segment = board.segments[index - 1]
            old = seg or SegmentRecord(index=index, id=segment.id)
            record.segments[index] = SegmentRecord(
                index=index, id=old.id, attempt=old.attempt, model=old.model, spec=old.spec, resume=record.resume
            )
            queued.append(index)
        record.error = None
        record.status = "running" if queued or not record.all_delivered() else "film_encoding"
        if record.status == "film_encoding" and record.film_wanted:  # failed before its film was ever requested
            record.film_wanted, record.film_version = False, record.film_version + 1
        detail = f"resume {record.resume}: " + (f"segments {queued} requested again" if queued else "film requested again")
        record.record("job.resumed", detail=detail + (f" by {by}" if by else ""))

    record, _ = await ledger.update(job_id, move)
    if record is None:
        return None
    for event in _resume_events(record, board):
        await bus.publish(event)
    return record
