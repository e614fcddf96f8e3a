"""A new storyboard for a finished job: the film's next version, rendering only the shots whose keys changed.

``PUT /v1/jobs/{id}/storyboard`` calls :func:`new_storyboard_version`. The new storyboard has the same
number of segments (a segment is edited, not added or removed: that is a new job). A segment moves to
its next attempt when anything of it changed (its prompt, seed, cast, model, transition, or the
style, output and sound every segment shares); among those, a segment whose shot key is unchanged or
already in the owner's shot store is not rendered (its frames are copied, :mod:`reelforge_shared.shots`),
only encoded again with the new storyboard. A segment that continues from a changed one (``start_from:
previous``) is requested after it, with its new last frame (:mod:`reelforge_shared.chain`), and renders
again only if that shot's key changed. :func:`extended_storyboard` appends a segment that continues from the last
one (``POST /v1/jobs/{id}/segments/{n}/extend``). The ledger, seeing every segment delivered again, requests
the film's next version, as after a re-render. The storyboard each version was made from stays beside
(``Keys.storyboard_version``).
"""

from __future__ import annotations

from typing import Any

from reelforge_shared.chain import continued, hold, release, start_frame
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import StartFrame
from reelforge_shared.jobs import JobRecord, Ledger, RerenderRefused, SegmentRecord
from reelforge_shared.shots import ShotPlan, ShotRequests
from reelforge_shared.specs import segment_requests
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, StoryboardLimits, parse_storyboard

_SHARED = ("model", "style", "output", "characters", "locations", "audio")  # what every segment's picture and sound read


def changed_segments(old: Storyboard, new: Storyboard) -> list[int]:
    """1-based indexes of the segments of ``new`` that differ from ``old`` in anything that reaches them.

    Segments beyond ``old``'s are new (an extension); a segment that continues from a changed one
    (``start_from: previous``) is requested again with it: its shot key tells whether it renders.
    """
    if old.model_dump(include=set(_SHARED)) != new.model_dump(include=set(_SHARED)):
        return list(range(1, len(new.segments) + 1))
    changed = {n for n, (a, b) in enumerate(zip(old.segments, new.segments, strict=False), start=1) if a != b}
    changed |= set(range(len(old.segments) + 1, len(new.segments) + 1))
    for n, seg in enumerate(new.segments, start=1):
        if seg.start_from == "previous" and n - 1 in changed:
            changed.add(n)
    return sorted(changed)


async def new_storyboard_version(
    ledger: Ledger,
    bus: Any,
    store: ObjectStore,
    bucket: str,
    job_id: str,
    board: Storyboard,
    *,
    reuse: bool = True,
    by: str | None = None,
    extends: bool = False,
) -> tuple[JobRecord, list[int]]:
    """Make the film's next version from ``board``; (the record, the segments requested again).

    Refused (:class:`RerenderRefused`) unless the job is completed; :class:`InvalidInput` for another
    segment count (``extends``: ``board`` is the job's storyboard with segments appended, :func:`extended_storyboard`).
    A storyboard equal to the current one changes nothing.
    """
    old = parse_storyboard(store.get_json(bucket, Keys.storyboard(job_id)))
    appended = len(board.segments) - len(old.segments)
    if (appended != 0 and not extends) or (extends and (appended < 1 or board.segments[: len(old.segments)] != old.segments)):
        message = f"the job has {len(old.segments)} segments and the new storyboard {len(board.segments)}; submit a new job"
        raise InvalidInput(message)
    changed = changed_segments(old, board)
    plan_key = Keys.shot_plan(job_id)
    plan = ShotPlan.model_validate(store.get_json(bucket, plan_key)) if store.exists(bucket, plan_key) else ShotPlan()
    # a moved segment that continues from one that stays starts from that one's current frames
    kept_before = [n - 1 for n in changed if board.segments[n - 1].start_from == "previous" and n - 1 not in changed]

    def move(record: JobRecord) -> tuple[dict[int, tuple[int, str | None]], dict[int, StartFrame]] | str:
        if record.status != "completed":
            return record.status
        if not changed:
            return {}, {}
        moved: dict[int, tuple[int, str | None]] = {}
        starts: dict[int, StartFrame] = {}
        for n in changed:
            old_seg = record.segments.get(n)
            attempt = old_seg.attempt + 1 if old_seg is not None else 1  # an appended segment's first attempt
            record.segments[n] = SegmentRecord(index=n, id=board.segments[n - 1].id, attempt=attempt)
            moved[n] = (attempt, old_seg.model if old_seg is not None else None)
        for p in kept_before:
            before = record.segments.get(p) or SegmentRecord(index=p, id=board.segments[p - 1].id)
            starts[p + 1] = start_frame(job_id, p, before.attempt, board.segments[p - 1].frames, before.shot_key)
        record.segment_count = len(board.segments)
        record.status, record.film_wanted, record.error = "running", True, None
        what = f"segment {changed[-1]} appended" if extends else f"segments {changed}"
        detail = f"storyboard for film version {record.film_version + 1}: {what}" + (f" by {by}" if by else "")
        record.record("job.storyboard", stage="queued", detail=detail)
        return moved, starts

    current = await ledger.get(job_id)
    if current is None:
        raise RerenderRefused("job_not_found", f"no job {job_id!r}")
    if current.status == "completed" and changed:  # keep the storyboard the current film was made from beside it
        store.put_json(bucket, Keys.storyboard_version(job_id, current.film_version), old.model_dump(mode="json"))
    record, result = await ledger.update(job_id, move, segments=sorted({*changed, *kept_before}))
    if record is None:
        raise RerenderRefused("job_not_found", f"no job {job_id!r}")
    if isinstance(result, str):
        raise RerenderRefused(
            "job_not_finished", f"job {job_id} is {result}; its storyboard can be replaced once it is completed"
        )
    moved, starts = result
    store.put_json(bucket, Keys.storyboard(job_id), board.model_dump(mode="json"))
    requests = []
    for n, seg in enumerate(board.segments, start=1):
        if n not in moved and seg.start_from is None and store.exists(bucket, Keys.waiting_request(job_id, n)):
            store.remove(bucket, Keys.waiting_request(job_id, n))  # an earlier version's: nothing releases it now
    for n, (attempt, model) in sorted(moved.items()):  # every request that waits is held before any frames release one
        seg = board.segments[n - 1]
        wanted = seg.model or board.model or model
        takes = segment_requests(board, job_id, n, attempt=attempt, model=wanted, resume=record.resume)
        if seg.start_from == "previous" and n not in starts:
            hold(store, bucket, takes[0])  # after the segment before it (reelforge_shared.chain); one take
        else:
            requests += [continued(take, starts[n]) if n in starts else take for take in takes]
    shots = ShotRequests(store, bucket, owner=plan.owner, reuse=reuse)
    for request in requests:
        request, generated = shots.plan(request)
        await bus.publish(request)
        if generated is not None:
            await bus.publish(generated)
            for event in release(store, bucket, generated):
                await bus.publish(event)
    return record, sorted(moved)


def extended_storyboard(old: Storyboard, *, prompt: str, duration_s: float, limits: StoryboardLimits | None = None) -> Storyboard:
    """``old`` with a segment appended that continues from the last frame of its last one.

    The new segment is the last one's cast, place, model, rate and settings with ``prompt``, ``duration_s``
    seconds long (at least one frame), ``start_from: previous`` and a cut; the storyboard with it must pass
    ``limits`` (:class:`~reelforge_shared.storyboard.StoryboardInvalid` names the field).
    """
    last, index = old.segments[-1], len(old.segments) + 1
    taken = {s.id for s in old.segments}
    segment_id = next(name for k in range(index, index + len(taken) + 1) if (name := f"extend-{k}") not in taken)
    frames = max(1, round(duration_s * last.fps))
    update = {"id": segment_id, "prompt": prompt, "frames": frames, "start_from": "previous", "seed": None}
    segment = last.model_dump(mode="json", exclude={"transition", "narration", "audio", "takes", "variants"}) | update
    data = old.model_dump(mode="json")
    return parse_storyboard(data | {"segments": [*data["segments"], segment]}, limits)
