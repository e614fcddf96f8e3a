"""Re-render and resume against the store and the bus (the pure moves are in :mod:`.transitions`).

Re-render one segment of a job: the one path for the API's re-render and for continuity-driven regeneration.

:func:`rerender_segment` (a coroutine) does it from anywhere that holds the ledger, the bus and the
store: it checks the job in the ledger, moves the segment to a new attempt there (compare-and-set),
and publishes ``segment.requested`` for that attempt with the new seed and/or prompt (the style,
cast and location of the storyboard still apply). From a handler, return a
:class:`~reelforge_shared.events.SegmentRerenderRequested` event instead: the gateway's route for it
calls this function.

The segments that continue from it (``start_from: previous``, directly or through each other) move to
their next attempt with it: their requests wait in the work bucket until the frames of the one before
them exist (:mod:`reelforge_shared.chain`), so they render again from its new last frame, and only they.

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

import structlog

from reelforge_shared.chain import carrying, followers, hold, start_frame
from reelforge_shared.errors import InvalidInput, PermanentError
from reelforge_shared.events import SegmentRequested
from reelforge_shared.jobs import transitions
from reelforge_shared.jobs.record import JobRecord
from reelforge_shared.jobs.store import Ledger
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, parse_storyboard

log = structlog.get_logger("reelforge.jobs")
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
    record, _ = await plan_rerender(
        ledger, store, bucket, job_id, index, seed=seed, prompt=prompt, by=by, statuses=statuses, references=references
    )
    return record  # the store published the request with its write (``bus`` kept for the callers' signature)


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
) -> tuple[JobRecord, SegmentRequested | None]:
    """Move the segment to its next attempt; the record and the ``segment.requested`` the store published with the write
    (None: it waits for the frames of the segment before it, which is rendering again).

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

    after = followers(board, index)  # they continue from this shot: they render again after it (reelforge_shared.chain)

    ours: dict[int, int] = {}  # the attempts this re-render held, by index

    def move(record: JobRecord) -> tuple[int, str | None] | str:
        moved = transitions.rerender(
            record, index, segment.id, statuses=statuses, seed=seed, prompt=prompt, references=references, by=by
        )
        if isinstance(moved, str):
            return moved
        request = _request(record, moved)
        if request.spec.start_frame is None and segment.start_from == "previous":
            hold(store, bucket, request)  # the segment before it is rendering again: released by its frames
        else:  # published with the write (the store's outbox), or repaired after
            record.emit(request)
        # Held before the write that publishes this segment's request, so that its frames find them (the last run of
        # this function is the one written: each run overwrites the held requests of the one before).
        # The attempts asked for already outside the ledger (QA's regeneration of a follower not folded yet): the held
        # attempts come after them. An earlier run of this function (a write conflict) held its own: not counted.
        asked = {n: a for n in after if (a := carrying(store, bucket, job_id, n)) != ours.get(n)}
        carried_down = transitions.carry_down(record, index, [(n, board.segments[n - 1].id) for n in after], asked)
        for n, old in carried_down.items():
            spec = (old.spec or render_spec(board, n)).model_copy(update={"start_frame": None})
            carried = SegmentRequested(
                job_id=job_id,
                index=n,
                segment_id=old.id,
                attempt=record.segments[n].attempt,
                spec=spec,
                model=old.model,
                resume=record.resume,
            )
            hold(store, bucket, carried)
            ours[n] = carried.attempt
        return moved

    def _request(record: JobRecord, moved: tuple[int, str | None]) -> SegmentRequested:
        attempt, model = moved
        start = None  # a segment that continues from the one before starts from that one's current last frame
        before = record.segments.get(index - 1)
        if segment.start_from == "previous" and before is not None and before.stage != "queued":
            start = start_frame(job_id, index - 1, before.attempt, board.segments[index - 2].frames, before.shot_key)
        return SegmentRequested(
            job_id=job_id,
            index=index,
            segment_id=segment.id,
            attempt=attempt,
            spec=spec.model_copy(update={"start_frame": start}),
            model=model,
            resume=record.resume,
        )

    loaded = [n for n in (index - 1, index, *after) if n >= 1]
    record, moved = await ledger.update(job_id, move, segments=loaded)
    if record is None:
        raise RerenderRefused("job_not_found", f"no job {job_id!r}")
    if isinstance(moved, str):
        message = f"job {job_id} is {moved}; a segment can be re-rendered once the job is finished"
        raise RerenderRefused("job_not_finished", message)
    request = _request(record, moved)
    return record, (None if request.spec.start_frame is None and segment.start_from == "previous" else request)


async def resume_job(ledger: Ledger, bus: Any, board: Storyboard, job_id: str, *, by: str | None = None) -> JobRecord | None:
    """Resume a failed job from the work already stored; the updated record (None: no such job).

    Compare-and-set in the ledger first (one resume per failure, however many requests race), then
    the publishes. A job that is not failed is not moved; if it is running a resume whose publishes
    may not all have gone out (the request that moved it stopped in between), they go out again
    (the same de-duplication ids: the bus drops what it already has).
    """

    # Not the head's outbox: a resume may request every segment, each with its spec, more than one value
    # holds. The ledger is told the resume owes the bus its requests before the write; should the publishes
    # below fail, the upkeep publishes them again from the record (Ledger.republish_owed), as a resubmission does.
    await ledger.owe(job_id)
    record, _ = await ledger.update(job_id, lambda record: transitions.resume(record, board, by), segments="all")
    if record is None:
        await ledger.paid(job_id)
        return None
    try:
        for event in transitions.resume_events(record, board):
            await bus.publish(event)
    except Exception as exc:  # noqa: BLE001 - the ledger holds the resume: the upkeep publishes what it owes
        log.warning("job.publish_deferred", job_id=job_id, resume=record.resume, error=repr(exc))
        return record
    await ledger.paid(job_id)
    return record
