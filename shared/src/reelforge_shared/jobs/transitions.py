"""Pure transitions of a job's record: no I/O, no clock but the events' own, no bus.

Each function takes a record (and what it needs), alters it in place, appends a :class:`Change` when
anything changed, and returns what the caller must do next (the events to publish, or why it was
refused). The store (:mod:`reelforge_shared.jobs.store`) runs them under compare-and-set, so they may
run several times for one write and must only alter the record they are given.

- :func:`fold`: one job event into the record (the observer's only work); the film request it implies.
- :func:`rerender`: one segment moved to a new attempt (the API's re-render, QA's re-render); :func:`carry_down`
  the segments that continue from it with it.
- :func:`resume`: a failed job's failed segments queued again; :func:`resume_events` what that requests.
- :func:`cancel`: the job marked cancelled.
- :func:`select_take`: another take of a segment put into the film (a new film version, nothing rendered).
- :func:`ask_rendition`, :func:`forget_rendition`: a derived rendition of a film version recorded, and deleted;
  :func:`fold` marks it made (``rendition.encoded``) or failed.
- :func:`recut`: the film re-cut from an editor's timeline (a new film version from stored renders, nothing rendered).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reelforge_shared.events import (
    CutEntry,
    Event,
    FilmChecked,
    FilmEncoded,
    FilmRequested,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    RenderSpec,
    RenditionEncoded,
    RenditionFailed,
    SegmentChecked,
    SegmentDelivered,
    SegmentEncoded,
    SegmentFailed,
    SegmentGenerated,
    SegmentRequested,
    SegmentTakeSelected,
)
from reelforge_shared.jobs.record import (
    MAX_RENDITIONS,
    SEGMENT_STAGES,
    TERMINAL,
    JobRecord,
    RenditionRecord,
    SegmentRecord,
    SegmentStage,
    TakeRecord,
)
from reelforge_shared.specs import render_spec, segment_requests
from reelforge_shared.storyboard import Storyboard
from reelforge_shared.takes import TakeScore, rank_takes

_RANK = {"queued": 0, "generated": 1, "encoded": 2, "checked": 3, "delivered": 4, "failed": 5}
_STAGE_OF: dict[type[Event], SegmentStage] = {
    SegmentRequested: "queued",
    SegmentGenerated: "generated",
    SegmentEncoded: "encoded",
    SegmentChecked: "checked",
    SegmentDelivered: "delivered",
    SegmentFailed: "failed",
}
_FILM_STATUS: dict[type[Event], str] = {FilmRequested: "film_encoding", FilmEncoded: "film_checking", FilmChecked: "delivering"}
OBSERVED_EVENTS: tuple[type[Event], ...] = (
    JobSubmitted,
    *_STAGE_OF,
    FilmRequested,
    FilmEncoded,
    FilmChecked,
    JobCompleted,
    JobFailed,
    JobCancelled,
    RenditionEncoded,
    RenditionFailed,
)


def fold(record: JobRecord, event: Event) -> list[Event]:
    """Apply one event to the record; return the events this transition publishes (``film.requested``).

    Pure: no I/O. A repeated event changes nothing and appends no change, except that a repeat of the
    delivery that requested the film returns the same request again (the bus drops the copy).
    """
    before = record.model_dump(exclude={"updated_at", "changes"})
    kind, index, stage = event.subject, getattr(event, "index", None), None
    if isinstance(event, JobSubmitted):
        record.title, record.segment_count = event.title, event.segment_count
    elif (stage := _STAGE_OF.get(type(event))) is not None:
        _fold_segment(record, event, stage)
    elif (film_status := _FILM_STATUS.get(type(event))) is not None:
        if not record.terminal and event.version == record.film_version:  # type: ignore[attr-defined]
            record.status = film_status  # type: ignore[assignment]
    elif isinstance(event, JobCompleted):
        record.films[event.version] = event.film_key
        if event.version == record.film_version:  # an earlier version finishing late changes nothing else
            if record.status != "cancelled":
                record.status = "completed"
            record.film_key, record.film_url, record.report_key = event.film_key, event.film_url, event.report_key
            record.delivery_bucket, record.report_html_key = event.delivery_bucket, event.report_html_key
            record.deliverables = event.deliverables
            record.qa_failed_segments, record.duration_s = event.qa_failed_segments, event.duration_s
    elif isinstance(event, JobFailed):
        if not record.terminal and event.resume >= record.resume:  # a failure from before a resume is over
            record.status, record.error = "failed", f"{event.stage}: {event.error}"
    elif isinstance(event, JobCancelled) and record.status not in TERMINAL:
        record.status = "cancelled"
    elif isinstance(event, RenditionEncoded | RenditionFailed):
        _fold_rendition(record, event)
    publish: list[Event] = []
    if record.film_wanted and record.all_delivered() and not record.terminal:
        record.film_wanted, record.film_version = False, record.film_version + 1
        publish.append(record.film_request())
    elif isinstance(event, SegmentDelivered) and record.status == "film_encoding" and record.all_delivered():
        publish.append(record.film_request())  # a redelivery after a crash between the write and the publish
    if record.model_dump(exclude={"updated_at", "changes"}) != before:
        if record.status == "queued" and isinstance(event, SegmentGenerated | SegmentEncoded | SegmentChecked | SegmentDelivered):
            record.status = "running"
        record.record(kind, index, stage, getattr(event, "error", None))
    return publish


def _fold_rendition(record: JobRecord, event: RenditionEncoded | RenditionFailed) -> None:
    """A rendition made or failed: only one still recorded (not deleted since), and only for its own request."""
    asked = record.renditions.get(event.version, {}).get(event.rendition_id)
    if asked is None or asked.status != "pending" or (event.request and event.request != asked.request):
        return
    if isinstance(event, RenditionEncoded):
        asked.status, asked.key, asked.size_bytes = "ready", event.key, event.size_bytes
    else:
        asked.status, asked.error = "failed", event.error


def ask_rendition(record: JobRecord, version: int, rid: str, spec: dict[str, Any], made: dict[str, Any] | None) -> str | None:
    """Record a derived rendition of film ``version`` (once: asked again, nothing changes); why not, or None.

    ``made`` is the encoder's record when the rendition is stored already (its key and size, or its error)."""
    if rid in record.renditions.get(version, {}):
        return None
    if sum(len(v) for v in record.renditions.values()) >= MAX_RENDITIONS:
        return f"job {record.job_id} keeps {MAX_RENDITIONS} renditions at most: delete one first"
    record.renditions_asked += 1
    asked = RenditionRecord(
        id=rid,
        kind=spec["kind"],
        params={k: v for k, v in spec.items() if k != "kind"},
        request=record.renditions_asked,
    )
    if made is not None:  # stored before the job store recorded it
        asked.status = "failed" if "error" in made else "ready"
        asked.key, asked.size_bytes, asked.error = made.get("key"), made.get("size_bytes"), made.get("error")
    record.renditions.setdefault(version, {})[rid] = asked
    record.record("rendition.requested", detail=f"film version {version}: {asked.kind} {rid}")
    return None


def forget_rendition(record: JobRecord, version: int, rid: str) -> RenditionRecord | None:
    """Remove a rendition's record; the record removed (its key: the object to delete), None when there was none."""
    versions = record.renditions.get(version, {})
    gone = versions.pop(rid, None)
    if gone is None:
        return None
    if not versions:
        del record.renditions[version]
    record.record("rendition.deleted", detail=f"film version {version}: {gone.kind} {rid}")
    return gone


def _fold_segment(record: JobRecord, event: Any, stage: SegmentStage) -> None:
    seg = record.segments.setdefault(event.index, SegmentRecord(index=event.index, id=event.segment_id))
    if isinstance(event, SegmentFailed) and event.resume < seg.resume:
        return  # the failure a resume already answered by queueing the segment again
    # Stages only move forward, except that a new attempt (regeneration, re-render) starts the segment over.
    if event.attempt > seg.attempt:
        seg.attempt, seg.stage, seg.reached, seg.error = event.attempt, stage, {}, None
        seg.qa_passed, seg.qa_scores, seg.qa_failed_gates, seg.delivery_key = None, {}, [], None
        seg.shot_key, seg.reused_from, seg.take, seg.takes = None, None, 0, {}
    elif event.attempt < seg.attempt:
        return
    # One take of several (reelforge_shared.takes): the segment is as far as its slowest take, until the best is delivered.
    of_take = event.takes > 1 and not isinstance(event, SegmentDelivered | SegmentFailed)
    if of_take:
        stage = _fold_take(seg, event, stage)
    if _RANK[stage] < _RANK[seg.stage]:
        return
    seg.stage = stage
    if stage not in seg.reached:
        seg.reached[stage] = event.occurred_at
        if stage == "delivered":
            record.last_delivery_at = max(record.last_delivery_at or event.occurred_at, event.occurred_at)
        if stage in SEGMENT_STAGES[1:] and (before := SEGMENT_STAGES[SEGMENT_STAGES.index(stage) - 1]) in seg.reached:
            total, count = record.stage_sums.get(stage, (0.0, 0))
            seconds = (seg.reached[stage] - seg.reached[before]).total_seconds()
            record.stage_sums[stage] = (total + seconds, count + 1)
    if of_take:
        return
    if isinstance(event, SegmentRequested):
        seg.model, seg.spec = event.model, event.spec
        seg.shot_key, seg.reused_from = event.shot_key, event.reused_from
    if isinstance(event, SegmentGenerated):  # the generator's key is the one the frames have
        seg.shot_key, seg.reused_from = event.shot_key or seg.shot_key, event.reused_from or seg.reused_from
    if isinstance(event, SegmentEncoded | SegmentChecked | SegmentDelivered):
        seg.video_key = event.video_key
    if isinstance(event, SegmentChecked | SegmentDelivered):
        seg.qa_passed = event.qa.passed
        seg.qa_scores = {name: gate.score for name, gate in event.qa.gates.items()}
        seg.qa_failed_gates = sorted(name for name, gate in event.qa.gates.items() if not gate.passed)
    if isinstance(event, SegmentDelivered):
        seg.delivery_key = event.delivery_key
        if event.takes > 1 and event.selected_for is None:  # a selected take was put in the film when it was selected
            _put_in_film(seg, event.take, None)
    if isinstance(event, SegmentFailed):
        seg.error = f"{event.stage}: {event.error}"
        if not record.terminal:
            record.status, record.error = "failed", f"segment {event.index} ({event.segment_id}) failed in {event.stage}"


def _fold_take(seg: SegmentRecord, event: Any, stage: SegmentStage) -> SegmentStage:
    """Fold one take's event into its record; the stage of the segment (its slowest take's)."""
    take = seg.takes.setdefault(event.take, TakeRecord(take=event.take))
    if _RANK[stage] >= _RANK[take.stage]:
        take.stage = stage
        if isinstance(event, SegmentRequested):
            take.seed, take.prompt = event.spec.seed, event.spec.prompt
            take.shot_key, take.reused_from = event.shot_key, event.reused_from
            seg.model = event.model
            if event.take == 0:  # what a resume requests again
                seg.spec = event.spec
        if isinstance(event, SegmentGenerated):
            take.shot_key, take.reused_from = event.shot_key or take.shot_key, event.reused_from or take.reused_from
        if isinstance(event, SegmentEncoded | SegmentChecked):
            take.video_key = event.video_key
        if isinstance(event, SegmentChecked):
            take.qa_passed = event.qa.passed
            take.qa_scores = {name: gate.score for name, gate in event.qa.gates.items()}
            take.qa_failed_gates = sorted(name for name, gate in event.qa.gates.items() if not gate.passed)
            take.continuity = event.qa.continuity
            take.references = {f"{r.kind}:{r.name}": r.score for r in event.qa.references}
    ranks = [_RANK[seg.takes[k].stage] if k in seg.takes else 0 for k in range(event.takes)]
    slowest: SegmentStage = ("queued", "generated", "encoded", "checked")[min(ranks + [_RANK["checked"]])]
    return slowest


def _put_in_film(seg: SegmentRecord, chosen: int, by: str | None) -> None:
    """Take ``chosen`` is the segment's in the film; every checked take's verdict (the policy's, or the one who chose)."""
    checked = {k: t for k, t in seg.takes.items() if t.qa_passed is not None}
    verdicts = rank_takes(
        {k: TakeScore(t.qa_passed is True, t.qa_scores, tuple(t.qa_failed_gates), t.continuity) for k, t in checked.items()}
    )
    for k, take in checked.items():
        take.won, take.reason = k == chosen, verdicts[k].reason
        if by is not None and k == chosen:
            take.reason = f"selected by {by}" + ("" if verdicts[k].won else f" (the policy's choice is take {_best(verdicts)})")
        elif by is not None and verdicts[k].won:
            take.reason = f"{verdicts[k].reason}; take {chosen} selected by {by} instead"
    seg.take = chosen
    if chosen in seg.takes:
        take = seg.takes[chosen]
        take.stage = "delivered"
        seg.shot_key, seg.reused_from, seg.video_key = take.shot_key, take.reused_from, take.video_key or seg.video_key
        seg.qa_passed, seg.qa_scores, seg.qa_failed_gates = take.qa_passed, dict(take.qa_scores), list(take.qa_failed_gates)


def _best(verdicts: dict[int, Any]) -> int:
    return next(k for k, v in verdicts.items() if v.won)


def take_refusal(record: JobRecord, index: int, take: int) -> str | None:
    """Why take ``take`` of segment ``index`` cannot go into the film now, or None: the job must be completed
    and the take rendered and checked by QA."""
    if record.status != "completed":
        return f"job {record.job_id} is {record.status}; a take can be selected once the job is completed"
    seg = record.segments.get(index)
    chosen = seg.takes.get(take) if seg is not None else None
    if seg is None or chosen is None or chosen.qa_passed is None:
        return f"take {take} of segment {index} was not rendered and checked"
    return None


def select_take(record: JobRecord, index: int, take: int, *, by: str | None = None) -> str | None:
    """Put take ``take`` of segment ``index`` into the film: its next version, nothing rendered; None when done, else why not.

    Refused (the reason) unless the job is completed and the take was checked by QA. The take already in
    the film changes nothing. The take is delivered in place of the one delivered (``segment.take_selected``:
    the uploader's copy, ``segment.delivered``, the media listing all follow the selection); that delivery
    requests the film (:func:`fold`).
    """
    if why := take_refusal(record, index, take):
        return why
    seg = record.segments[index]
    if seg.take == take:
        return None
    _put_in_film(seg, take, by or "the owner")
    seg.stage = "checked"  # delivered again, as this take
    _follow_in_cut(record, index, seg.attempt, take)
    record.film_version, record.film_wanted, record.status = record.film_version + 1, False, "film_encoding"
    detail = f"take {take} into film version {record.film_version}" + (f" by {by}" if by else "")
    record.record("segment.take_selected", index=index, stage="checked", detail=detail)
    record.emit(
        SegmentTakeSelected(
            job_id=record.job_id,
            index=index,
            segment_id=seg.id,
            attempt=seg.attempt,
            take=take,
            takes=max(len(seg.takes), take + 1),
            version=record.film_version,
            by=by,
            resume=record.resume,
        )
    )
    return None


def _follow_in_cut(record: JobRecord, index: int, attempt: int, take: int) -> None:
    """A re-cut film keeps its cut when a segment in it is rendered again or another take selected: that render takes the
    entry's place, with the same frames of its media (every render of a segment has the same length)."""
    record.cut = [e.model_copy(update={"attempt": attempt, "take": take}) if e.index == index else e for e in record.cut]


def recut_refusal(record: JobRecord, entries: list[CutEntry]) -> str | None:
    """Why the film cannot be re-cut to ``entries`` now, or None: the job must be completed, every entry a segment of
    the job and an attempt it rendered, each segment at most once."""
    if record.status != "completed":
        return f"job {record.job_id} is {record.status}; a film is re-cut once the job is completed"
    if not entries:
        return "a cut needs at least one clip"
    seen: set[int] = set()
    for entry in entries:
        seg = record.segments.get(entry.index)
        if seg is None or not 1 <= entry.index <= record.segment_count:
            return f"segment {entry.index} is not in job {record.job_id}"
        if entry.attempt > seg.attempt:
            return f"segment {entry.index} has attempts 1 to {seg.attempt}, not {entry.attempt}"
        if entry.index in seen:
            return f"segment {entry.index} is in the cut twice"
        seen.add(entry.index)
    return None


def recut(record: JobRecord, entries: list[CutEntry], *, by: str | None = None) -> str | None:
    """The film's next version cut as ``entries`` say, from renders already made (nothing rendered); None when done, else
    why not (:func:`recut_refusal`). The same cut as the film's changes nothing."""
    if why := recut_refusal(record, entries):
        return why
    if entries == record.cut:
        return None
    record.cut = list(entries)
    record.film_version, record.film_wanted, record.status = record.film_version + 1, False, "film_encoding"
    order = ", ".join(f"{e.index}:{e.source_in}-{e.source_out}" for e in entries)
    detail = f"cut into film version {record.film_version}: {order}" + (f" by {by}" if by else "")
    record.record("film.recut", detail=detail)
    record.emit(record.film_request())
    return None


def cancel(record: JobRecord, by: str | None = None, reason: str | None = None) -> bool:
    """Mark the job cancelled and emit ``job.cancelled``; True when this call cancelled it (a finished job is left alone).

    ``reason``: ``deadline`` when the job's deadline passed (else it was asked for).
    """
    if record.terminal:
        return False
    record.status, record.cancel_reason = "cancelled", reason
    detail = ", ".join(d for d in (f"by {by}" if by else None, reason) if d) or None
    record.record("job.cancelled", detail=detail)
    record.emit(JobCancelled(job_id=record.job_id, by=by))
    return True


def past_deadline(record: JobRecord, now: datetime) -> bool:
    return not record.terminal and record.deadline_at is not None and now >= record.deadline_at


def rerender(
    record: JobRecord,
    index: int,
    segment_id: str,
    *,
    statuses: frozenset[str],
    seed: int | None = None,
    prompt: str | None = None,
    references: tuple[str, ...] = (),
    by: str | None = None,
) -> tuple[int, str | None] | str:
    """Move segment ``index`` to its next attempt; (attempt, model asked for), or the status that refuses it."""
    if record.status not in statuses:
        return record.status
    old = record.segments.get(index) or SegmentRecord(index=index, id=segment_id)
    attempt = old.attempt + 1
    record.segments[index] = SegmentRecord(index=index, id=segment_id, attempt=attempt, model=old.model)
    _follow_in_cut(record, index, attempt, 0)
    record.status, record.film_wanted, record.error = "running", True, None
    changes = (("seed", seed), ("prompt", prompt), ("reference", ", ".join(references) or None))
    what = ", ".join(f"{k} {v!r}" for k, v in changes if v is not None)
    detail = f"attempt {attempt}: {what}" + (f" by {by}" if by else "")
    record.record("segment.rerender", index=index, stage="queued", detail=detail)
    return attempt, old.model


def carry_down(
    record: JobRecord, index: int, followers: list[tuple[int, str]], asked: dict[int, int] | None = None
) -> dict[int, SegmentRecord]:
    """Move each of ``followers`` (index, id: the segments that continue from segment ``index``, :func:`chain.followers`)
    to its next attempt, as a re-render of ``index`` does to it; each one's record before the move, by index.

    ``asked``: by index, the attempt asked for already that the record may not have folded yet (QA's regeneration,
    :func:`reelforge_shared.chain.carrying`): the next attempt comes after it, so no attempt number is given twice."""
    before = {}
    for n, segment_id in followers:
        old = record.segments.get(n) or SegmentRecord(index=n, id=segment_id)
        attempt = max(old.attempt, (asked or {}).get(n, 0)) + 1
        record.segments[n] = SegmentRecord(index=n, id=segment_id, attempt=attempt, model=old.model)
        record.record("segment.rerender", index=n, stage="queued", detail=f"attempt {attempt}: continues from segment {index}")
        before[n] = old
    return before


def resume(record: JobRecord, board: Storyboard, by: str | None = None) -> None:
    """Resume a failed job: its failed (or never started) segments queued again under the next ``resume``.

    Delivered segments, and those still on their way in the run that failed, are left alone; a job
    that failed after every segment was delivered goes back to ``film_encoding``. A job that is not
    failed is not moved.
    """
    if record.status != "failed":
        return
    record.resume += 1
    queued = []
    for index in range(1, record.segment_count + 1):
        seg = record.segments.get(index)
        if seg is not None and seg.stage != "failed":
            continue
        segment = board.segments[index - 1]
        old = seg or SegmentRecord(index=index, id=segment.id)
        record.segments[index] = SegmentRecord(
            index=index, id=old.id, attempt=old.attempt, model=old.model, spec=old.spec, resume=record.resume
        )
        queued.append(index)
    record.error, record.finished_at = None, None
    record.status = "running" if queued or not record.all_delivered() else "film_encoding"
    if record.status == "film_encoding" and record.film_wanted:  # failed before its film was ever requested
        record.film_wanted, record.film_version = False, record.film_version + 1
    detail = f"resume {record.resume}: " + (f"segments {queued} requested again" if queued else "film requested again")
    record.record("job.resumed", detail=detail + (f" by {by}" if by else ""))


def resume_events(record: JobRecord, board: Storyboard) -> list[Event]:
    """What the job's current resume requests: its re-queued segments not yet past "queued", or its film."""
    if record.resume == 0 or record.terminal:
        return []
    if record.status == "film_encoding" and record.all_delivered():
        return [record.film_request()]
    events: list[Event] = []
    for index, seg in sorted(record.segments.items()):
        if seg.resume == record.resume and seg.stage == "queued" and 1 <= index <= len(board.segments):
            if seg.spec is None and board.segments[index - 1].start_from == "previous":
                continue  # never requested: its request waits for the segment before it (reelforge_shared.chain)
            if seg.attempt == 1 and board.takes_of(board.segments[index - 1]) > 1:  # every take again: the stored are skipped
                events += segment_requests(board, record.job_id, index, model=seg.model, resume=record.resume)
                continue
            spec: RenderSpec = seg.spec or render_spec(board, index)
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
