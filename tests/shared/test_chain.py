"""Continuations and the job's other paths: a re-render starts from the current last frame of the segment before, a resume
leaves a never-requested continuation to be released as on the first run."""

from __future__ import annotations

from reelforge_shared.bus import Bus
from reelforge_shared.events import SegmentFailed
from reelforge_shared.jobs import JobRecord, Ledger, SegmentRecord, plan_rerender
from reelforge_shared.jobs.transitions import fold, resume, resume_events
from reelforge_shared.specs import segment_requests
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard

BOARD = {
    "segments": [
        {"id": "door", "prompt": "a red door opens", "frames": 3},
        {"id": "hall", "prompt": "a hall behind it", "frames": 2, "start_from": "previous"},
    ]
}


async def test_a_rerendered_continuation_starts_from_the_current_last_frame_of_the_segment_before(
    settings, store: ObjectStore
) -> None:
    bucket, job = settings.work_bucket, "j-chain-rerender"
    store.put_json(bucket, Keys.storyboard(job), parse_storyboard(BOARD).model_dump(mode="json"))
    segments = {
        1: SegmentRecord(index=1, id="door", stage="delivered", attempt=2, shot_key="d" * 64),  # re-rendered once already
        2: SegmentRecord(index=2, id="hall", stage="delivered"),
    }
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        await ledger.create(JobRecord(job_id=job, status="completed", segment_count=2, segments=segments))
        _, request = await plan_rerender(ledger, store, bucket, job, 2, seed=77)
    finally:
        await bus.close()
    assert request.attempt == 2
    assert request.spec.seed == 77
    assert request.spec.start_frame is not None
    assert request.spec.start_frame.frame_key == Keys.frame(job, 1, 2, attempt=2)  # the last of door's 3 frames, attempt 2
    assert request.spec.start_frame.shot_key == "d" * 64


def test_a_resume_leaves_a_continuation_never_requested_to_the_segment_before_it() -> None:
    """It was held, not requested: the resumed segment before it releases it with its last frame, as on the first run."""
    board = parse_storyboard(BOARD)
    record = JobRecord(job_id="j", segment_count=2)
    [first] = segment_requests(board, "j", 1)
    fold(record, first)
    fold(record, SegmentFailed.follow(first, stage="generator", error="out of memory"))
    resume(record, board)
    assert [e.index for e in resume_events(record, board)] == [1]  # type: ignore[attr-defined]
