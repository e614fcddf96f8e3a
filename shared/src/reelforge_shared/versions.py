"""A new storyboard for a finished job: the film's next version, rendering only the shots whose keys changed.

``PUT /v1/jobs/{id}/storyboard`` calls :func:`new_storyboard_version`. The new storyboard has the same
number of segments (a segment is edited, not added or removed: that is a new job). A segment moves to
its next attempt when anything of it changed (its prompt, seed, cast, model, transition, or the
style, output and sound every segment shares); among those, a segment whose shot key is unchanged or
already in the owner's shot store is not rendered (its frames are copied, :mod:`reelforge_shared.shots`),
only encoded again with the new storyboard. The ledger, seeing every segment delivered again, requests
the film's next version, as after a re-render. The storyboard each version was made from stays beside
(``Keys.storyboard_version``).
"""

from __future__ import annotations

from typing import Any

from reelforge_shared.errors import InvalidInput
from reelforge_shared.jobs import JobRecord, Ledger, RerenderRefused, SegmentRecord
from reelforge_shared.shots import ShotPlan, ShotRequests
from reelforge_shared.specs import segment_requests
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, parse_storyboard

_SHARED = ("model", "style", "output", "characters", "locations", "audio")  # what every segment's picture and sound read


def changed_segments(old: Storyboard, new: Storyboard) -> list[int]:
    """1-based indexes of the segments of ``new`` that differ from ``old`` in anything that reaches them."""
    if old.model_dump(include=set(_SHARED)) != new.model_dump(include=set(_SHARED)):
        return list(range(1, len(new.segments) + 1))
    return [n for n, (a, b) in enumerate(zip(old.segments, new.segments, strict=True), start=1) if a != b]


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
) -> tuple[JobRecord, list[int]]:
    """Make the film's next version from ``board``; (the record, the segments requested again).

    Refused (:class:`RerenderRefused`) unless the job is completed; :class:`InvalidInput` for another
    segment count. A storyboard equal to the current one changes nothing.
    """
    old = parse_storyboard(store.get_json(bucket, Keys.storyboard(job_id)))
    if len(board.segments) != len(old.segments):
        message = f"the job has {len(old.segments)} segments and the new storyboard {len(board.segments)}; submit a new job"
        raise InvalidInput(message)
    changed = changed_segments(old, board)
    plan_key = Keys.shot_plan(job_id)
    plan = ShotPlan.model_validate(store.get_json(bucket, plan_key)) if store.exists(bucket, plan_key) else ShotPlan()

    def move(record: JobRecord) -> dict[int, tuple[int, str | None]] | str:
        if record.status != "completed":
            return record.status
        if not changed:
            return {}
        moved = {}
        for n in changed:
            old_seg = record.segments.get(n) or SegmentRecord(index=n, id=board.segments[n - 1].id)
            record.segments[n] = SegmentRecord(index=n, id=board.segments[n - 1].id, attempt=old_seg.attempt + 1)
            moved[n] = (old_seg.attempt + 1, old_seg.model)
        record.status, record.film_wanted, record.error = "running", True, None
        detail = f"storyboard for film version {record.film_version + 1}: segments {changed}" + (f" by {by}" if by else "")
        record.record("job.storyboard", stage="queued", detail=detail)
        return moved

    current = await ledger.get(job_id)
    if current is None:
        raise RerenderRefused("job_not_found", f"no job {job_id!r}")
    if current.status == "completed" and changed:  # keep the storyboard the current film was made from beside it
        store.put_json(bucket, Keys.storyboard_version(job_id, current.film_version), old.model_dump(mode="json"))
    record, moved = await ledger.update(job_id, move, segments=changed)
    if record is None:
        raise RerenderRefused("job_not_found", f"no job {job_id!r}")
    if isinstance(moved, str):
        raise RerenderRefused("job_not_finished", f"job {job_id} is {moved}; its storyboard can be replaced once it is completed")
    store.put_json(bucket, Keys.storyboard(job_id), board.model_dump(mode="json"))
    shots = ShotRequests(store, bucket, owner=plan.owner, reuse=reuse)
    for n, (attempt, model) in sorted(moved.items()):
        seg = board.segments[n - 1]
        wanted = seg.model or board.model or model
        for take in segment_requests(board, job_id, n, attempt=attempt, model=wanted, resume=record.resume):
            request, generated = shots.plan(take)
            await bus.publish(request)
            if generated is not None:
                await bus.publish(generated)
    return record, sorted(moved)
