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
de-duplication id); a newer request of the same segment (a storyboard version) replaces it.
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
    """Keep ``request`` until the segment before it has frames."""
    store.put_json(bucket, Keys.waiting_request(request.job_id, request.index), request.model_dump(mode="json"))


def release(store: ObjectStore, bucket: str, generated: SegmentGenerated) -> list[Event]:
    """The events that ``generated`` lets go: the next segment's request if it waits for these frames (and, when that
    shot is reused, its ``segment.generated`` and what that lets go in turn)."""
    waiting = Keys.waiting_request(generated.job_id, generated.index + 1)
    if not store.exists(bucket, waiting):
        return []
    frame = start_frame(generated.job_id, generated.index, generated.attempt, generated.frame_count, generated.shot_key)
    request = continued(SegmentRequested.model_validate(store.get_json(bucket, waiting)), frame)
    plan_key = Keys.shot_plan(generated.job_id)
    plan = ShotPlan.model_validate(store.get_json(bucket, plan_key)) if store.exists(bucket, plan_key) else ShotPlan()
    request, reused = ShotRequests(store, bucket, owner=plan.owner, reuse=plan.reuse).plan(request)
    if reused is None:
        return [request]
    return [request, reused, *release(store, bucket, reused)]
