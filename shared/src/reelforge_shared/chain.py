"""Shots that continue from the last frame of the shot before them (``start_from: previous``).

Such a segment can only be rendered once the segment before it has frames. Its request is made with
the others (at submission, a new storyboard version, an extension) but, unless those frames already
exist, it waits in the work bucket (:func:`hold`, ``Keys.waiting_request``) instead of going on the bus.
Whoever publishes the previous segment's ``segment.generated`` (the generator after a render, the
submitter after a reuse) releases it with :func:`release`: the request gets the previous segment's last
frame as its start frame (:class:`~reelforge_shared.events.StartFrame`), and with it the previous shot's
key, which is part of its own shot key. So a changed shot makes every shot that continues from it
render again (a re-render of a shot holds the next attempt of each of its :func:`followers`), and an
unchanged chain is reused link by link; segments that start from nothing are requested at once and
render in parallel as before.

A released request stays stored (a redelivered ``segment.generated`` releases it again under the same
de-duplication id); a newer request of the same segment (a storyboard version) replaces it. Which attempt of
the segment before let it go is kept beside it: when a later attempt of that segment renders (QA regenerated it
after a gate failed, mid-job), the request is let go again as its own next attempt from the new last frame (a
new de-duplication id, so the bus does not drop it), and a late earlier attempt lets nothing go.

QA may ask for that segment's next attempt too, at the same time (its attempt rendered from the old last frame failed a
gate): :func:`regenerated` stores QA's request as the waiting one and sends it from the newest last frame kept beside
it, and gives up when a later attempt is asked for already. The frames of the segment before write that newest frame
before they read the waiting request, and QA writes its request before it reads the frame, so whichever comes first,
one of them sees the other: either both ask for the same attempt from the new frame (the bus keeps either), or the
frames ask for the attempt after QA's. The segment's last attempt starts from the newest last frame either way. An
earlier attempt still on the bus by then is not rendered (:func:`superseded`): the stored request asks for a later one.

A re-render of the segment before (the API's, continuity QA's) numbers the segment's next attempt in the job's ledger,
which may not have folded QA's regeneration of it yet: :func:`carrying` gives it the attempt asked for already in the
work bucket, so the held attempt comes after QA's. It removes the marker before it reads the stored request, and QA
reads the marker after it writes its request, so either the re-render sees QA's attempt or QA sees the marker gone
and asks for nothing (the held attempt renders from the new frames): no attempt number is handed out twice.
"""

from __future__ import annotations

from reelforge_shared.events import Event, SegmentGenerated, SegmentRequested, StartFrame
from reelforge_shared.shots import ShotPlan, ShotRequests
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard


def followers(board: Storyboard, index: int) -> list[int]:
    """The segments after ``index`` that continue from it, directly or through each other (1-based, in order): the
    ones whose shot keys change with its shot, so a re-render of ``index`` renders them again too."""
    after = []
    for n in range(index + 1, len(board.segments) + 1):
        if board.segments[n - 1].start_from != "previous":
            break
        after.append(n)
    return after


def start_frame(job_id: str, index: int, attempt: int, frame_count: int, shot_key: str | None) -> StartFrame:
    """The last frame of segment ``index`` (that attempt) as the start of the segment after it."""
    return StartFrame(frame_key=Keys.frame(job_id, index, frame_count - 1, attempt), shot_key=shot_key)


def continued(request: SegmentRequested, frame: StartFrame) -> SegmentRequested:
    """``request`` continuing from ``frame``."""
    return request.model_copy(update={"spec": request.spec.model_copy(update={"start_frame": frame}), "shot_key": None})


def hold(store: ObjectStore, bucket: str, request: SegmentRequested) -> None:
    """Keep ``request`` until the segment before it has frames (not let go yet by any attempt of that segment)."""
    store.remove(bucket, Keys.waiting_released(request.job_id, request.index))
    store.put_json(bucket, Keys.waiting_request(request.job_id, request.index), request.model_dump(mode="json"))


def release(store: ObjectStore, bucket: str, generated: SegmentGenerated) -> list[Event]:
    """The events that ``generated`` lets go: the next segment's request if it waits for these frames (and, when that
    shot is reused, its ``segment.generated`` and what that lets go in turn)."""
    job, index = generated.job_id, generated.index + 1
    waiting = Keys.waiting_request(job, index)
    if not store.exists(bucket, waiting):
        return []
    marker = Keys.waiting_released(job, index)
    let_go = store.find_json(bucket, marker) or {}  # one read: a re-render of the segment before may remove it (carrying)
    let_go_by = let_go.get("attempt")
    if let_go_by is not None and generated.attempt < let_go_by:
        return []  # a late earlier attempt of the segment before: its frames are no longer the ones continued from
    frame = start_frame(job, generated.index, generated.attempt, generated.frame_count, generated.shot_key)
    if let_go_by == generated.attempt and "released" in let_go:  # these frames again (a redelivery): the same request
        stored = SegmentRequested.model_validate(store.get_json(bucket, waiting))
        stored = stored.model_copy(update={"attempt": let_go["released"]})
    else:
        # Which attempt let it go before these frames (kept across a crash between the two writes of the marker).
        before = let_go.get("before") if let_go_by == generated.attempt else let_go_by
        # The marker first, the request after: a QA regeneration of this segment writes its request first and reads the
        # marker after (:func:`regenerated`), so one of the two sees the other's write (reelforge_qa.handler).
        newest = {"attempt": generated.attempt, "start_frame": frame.model_dump(mode="json"), "before": before}
        store.put_json(bucket, marker, newest)
        stored = SegmentRequested.model_validate(store.get_json(bucket, waiting))
        if before is not None:
            # The segment before rendered again after it let this one go (QA regenerated it): this one renders again
            # too, as an attempt after any asked for meanwhile (QA's regeneration of it is stored as the request).
            stored = stored.model_copy(update={"attempt": stored.attempt + 1})
            store.put_json(bucket, waiting, stored.model_dump(mode="json"))
        store.put_json(bucket, marker, newest | {"released": stored.attempt})
    request = continued(stored, frame)
    plan_key = Keys.shot_plan(generated.job_id)
    plan = ShotPlan.model_validate(store.get_json(bucket, plan_key)) if store.exists(bucket, plan_key) else ShotPlan()
    request, reused = ShotRequests(store, bucket, owner=plan.owner, reuse=plan.reuse).plan(request)
    if reused is None:
        return [request]
    return [request, reused, *release(store, bucket, reused)]


def regenerated(store: ObjectStore, bucket: str, request: SegmentRequested) -> SegmentRequested | None:
    """QA's regeneration ``request`` (the next attempt of a segment whose attempt failed a gate) as it goes out: when the
    segment continues from the one before it (a request waits for it), from that one's newest last frame, and stored
    as the request that frames of the one before let go next; None when a later attempt than ``request`` is asked for
    already (the one before rendered again and let it go again, or a re-render of it holds it): that attempt renders
    from the newest frames, and asking for this one too would take its de-duplication id.

    A segment that continues from nothing (no request waits) gets ``request`` back unchanged.
    """
    waiting = Keys.waiting_request(request.job_id, request.index)
    if not store.exists(bucket, waiting):
        return request
    stored = SegmentRequested.model_validate(store.get_json(bucket, waiting))
    if stored.attempt > request.attempt:
        return None
    if stored.attempt < request.attempt:  # the request first, the marker after (see release)
        held = request.model_copy(update={"spec": request.spec.model_copy(update={"start_frame": None}), "shot_key": None})
        store.put_json(bucket, waiting, held.model_dump(mode="json"))
    # stored.attempt == request.attempt: asked for already, by the frames of the one before (then from the newest
    # frame, as below) or by this regeneration before a redelivery: the same request, the same id.
    let_go = store.find_json(bucket, Keys.waiting_released(request.job_id, request.index))
    if let_go is None:
        # A re-render of the one before holds this attempt for its new frames (it removes the marker before it reads
        # the request, :func:`carrying`): they let it go; sent now, it would take their request's de-duplication id.
        return None
    newest = let_go.get("start_frame")
    return continued(request, StartFrame.model_validate(newest)) if newest else request


def carrying(store: ObjectStore, bucket: str, job_id: str, index: int) -> int:
    """Before a re-render of the segment before holds segment ``index``'s next attempt (:func:`hold`): the attempt asked
    for already outside the job's ledger (the stored request: a release, or QA's regeneration the ledger has not folded
    yet), 0 when none; the held attempt must come after it, or the two share a de-duplication id and the bus drops one.

    It removes the marker first and reads the request after; QA writes its regeneration first and reads the marker
    after (:func:`regenerated`): either this sees QA's attempt (and holds the one after it), or QA sees no marker and
    asks for nothing (the held attempt renders from the new frames instead).
    """
    store.remove(bucket, Keys.waiting_released(job_id, index))
    stored = store.find_json(bucket, Keys.waiting_request(job_id, index))
    return int(stored["attempt"]) if stored is not None else 0


def superseded(store: ObjectStore, bucket: str, request: SegmentRequested) -> int | None:
    """The later attempt asked for already of a continued shot's ``request`` (its stored waiting request's: the frames of
    the one before let it go again, QA regenerated it, or a re-render holds it), else None: that attempt renders from
    the newest last frame and replaces this one, so this one need not render (the generator drops it). A shot that
    continues from nothing, and the latest attempt, are never superseded."""
    if request.spec.start_frame is None:
        return None
    stored = store.find_json(bucket, Keys.waiting_request(request.job_id, request.index))
    later = int(stored["attempt"]) if stored is not None else 0
    return later if later > request.attempt else None
