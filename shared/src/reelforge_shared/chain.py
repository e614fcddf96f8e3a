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
    stored = SegmentRequested.model_validate(store.get_json(bucket, waiting))
    marker = Keys.waiting_released(job, index)
    let_go_by = store.get_json(bucket, marker)["attempt"] if store.exists(bucket, marker) else None
    if let_go_by is not None and generated.attempt < let_go_by:
        return []  # a late earlier attempt of the segment before: its frames are no longer the ones continued from
    if let_go_by is not None and generated.attempt > let_go_by:
        # The segment before rendered again after it let this one go (QA regenerated it): this one renders again too.
        stored = stored.model_copy(update={"attempt": stored.attempt + 1})
        hold(store, bucket, stored)
    store.put_json(bucket, marker, {"attempt": generated.attempt})
    frame = start_frame(job, generated.index, generated.attempt, generated.frame_count, generated.shot_key)
    request = continued(stored, frame)
    plan_key = Keys.shot_plan(generated.job_id)
    plan = ShotPlan.model_validate(store.get_json(bucket, plan_key)) if store.exists(bucket, plan_key) else ShotPlan()
    request, reused = ShotRequests(store, bucket, owner=plan.owner, reuse=plan.reuse).plan(request)
    if reused is None:
        return [request]
    return [request, reused, *release(store, bucket, reused)]
