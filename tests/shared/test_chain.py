"""Continuations and the job's other paths: a re-render starts from the current last frame of the segment before, a resume
leaves a never-requested continuation to be released as on the first run."""

from __future__ import annotations

from reelforge_shared.bus import Bus
from reelforge_shared.chain import hold, regenerated, release
from reelforge_shared.events import ModelInfo, SegmentFailed, SegmentGenerated, SegmentRequested
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
    assert request is not None
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


CHAIN = {
    "segments": [
        {"id": "door", "prompt": "a red door opens", "frames": 2},
        {"id": "hall", "prompt": "a hall behind it", "frames": 2, "start_from": "previous"},
        {"id": "stair", "prompt": "a stair goes up", "frames": 2, "start_from": "previous"},
        {"id": "garden", "prompt": "a garden elsewhere", "frames": 2},
    ]
}


async def test_a_rerender_holds_the_next_attempt_of_each_shot_that_continues_from_it_and_no_other(
    settings, store: ObjectStore
) -> None:
    bucket, job = settings.work_bucket, "j-chain-carry"
    store.put_json(bucket, Keys.storyboard(job), parse_storyboard(CHAIN).model_dump(mode="json"))
    segments = {n: SegmentRecord(index=n, id=s["id"], stage="delivered") for n, s in enumerate(CHAIN["segments"], start=1)}

    async def attempts() -> list[int]:
        full = await ledger.get(job)
        assert full is not None
        return [full.segments[n].attempt for n in range(1, 5)]

    def held(n: int) -> SegmentRequested | None:
        key = Keys.waiting_request(job, n)
        return SegmentRequested.model_validate(store.get_json(bucket, key)) if store.exists(bucket, key) else None

    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        await ledger.create(JobRecord(job_id=job, status="completed", segment_count=4, segments=segments))
        record, request = await plan_rerender(ledger, store, bucket, job, 1, seed=4242)
        assert request is not None
        assert request.attempt == 2
        assert await attempts() == [2, 2, 2, 1]
        assert [record.segments[n].stage for n in range(1, 4)] == ["queued", "queued", "queued"]
        for n in (2, 3):  # waiting for the frames of the shot before it, which renders again
            waiting = held(n)
            assert waiting is not None
            assert (waiting.attempt, waiting.spec.start_frame) == (2, None)
        assert held(4) is None

        # The chain's middle shot re-rendered while its first renders again: it waits too, and carries the last one.
        record, request = await plan_rerender(
            ledger, store, bucket, job, 2, prompt="a hall with a lamp", statuses=frozenset({"running"})
        )
        assert request is None
        waiting = held(2)
        assert waiting is not None
        assert waiting.attempt == 3
        assert "a hall with a lamp" in waiting.spec.prompt
        third = held(3)
        assert third is not None
        assert third.attempt == 3
        assert await attempts() == [2, 3, 3, 1]

        # The shot outside the chain: it alone moves.
        def finished(r: JobRecord) -> None:
            r.status = "completed"
            r.record("job.completed")

        await ledger.update(job, finished)
        record, request = await plan_rerender(ledger, store, bucket, job, 4, seed=7)
        assert request is not None
        assert await attempts() == [2, 3, 3, 2]
        assert held(4) is None
    finally:
        await bus.close()


def _generated(job: str, index: int, attempt: int) -> SegmentGenerated:
    model = ModelInfo(name="tiny", pipeline="StableVideoDiffusionPipeline", random_weights=True)
    return SegmentGenerated(
        job_id=job,
        index=index,
        segment_id=BOARD["segments"][index - 1]["id"],
        attempt=attempt,
        frames_prefix=f"jobs/{job}/segments/{index:03d}/frames/",
        frame_count=3,
        fps=8,
        width=64,
        height=64,
        model=model,
        shot_key=f"{attempt}" * 64,
    )


def test_a_regenerated_shot_lets_the_one_that_continues_from_it_render_again_from_its_new_last_frame(
    settings, store: ObjectStore
) -> None:
    """QA regenerates a shot mid-job (a gate failed) after the one continuing from it was let go from its first attempt's
    last frame: the new attempt's frames let that one go again, as its next attempt, from the new last frame."""
    bucket, job = settings.work_bucket, "j-chain-regenerated"
    board = parse_storyboard(BOARD)
    [waiting] = segment_requests(board, job, 2)
    hold(store, bucket, waiting)

    [first] = release(store, bucket, _generated(job, 1, attempt=1))
    assert isinstance(first, SegmentRequested)
    assert first.attempt == 1
    assert first.spec.start_frame is not None
    assert first.spec.start_frame.frame_key == Keys.frame(job, 1, 2, attempt=1)

    [again] = release(store, bucket, _generated(job, 1, attempt=2))  # QA's regeneration of the door, rendered
    assert isinstance(again, SegmentRequested)
    assert again.attempt == 2  # a new attempt: its de-duplication id is new, so the bus does not drop it
    assert again.spec.start_frame is not None
    assert again.spec.start_frame.frame_key == Keys.frame(job, 1, 2, attempt=2)
    assert again.spec.seed == first.spec.seed  # the same shot, from the new frame

    [redelivered] = release(store, bucket, _generated(job, 1, attempt=2))  # the same event again: the same request
    assert redelivered.dedup_id() == again.dedup_id()
    assert release(store, bucket, _generated(job, 1, attempt=1)) == []  # a late first attempt lets nothing go

    held = waiting.model_copy(update={"attempt": 3})  # a re-render of the door holds the hall's next attempt itself
    hold(store, bucket, held)
    [carried] = release(store, bucket, _generated(job, 1, attempt=3))
    assert isinstance(carried, SegmentRequested)
    assert carried.attempt == 3


def test_a_regeneration_gives_way_to_a_later_attempt_held_for_new_frames_and_goes_out_from_the_newest_frame(
    settings, store: ObjectStore
) -> None:
    """QA regenerates the hall (a gate failed) while a re-render of the door holds the hall's attempt after it: QA asks
    for nothing (that attempt renders from the door's new frames). Without one held, QA's regeneration goes out from the
    door's newest last frame and is the request the door's next frames let go, as the attempt after it."""
    bucket, job = settings.work_bucket, "j-chain-regeneration"
    board = parse_storyboard(BOARD)
    [waiting] = segment_requests(board, job, 2)
    hold(store, bucket, waiting)
    [first] = release(store, bucket, _generated(job, 1, attempt=1))
    retry = SegmentRequested.retry(first, 2, spec=first.spec.model_copy(update={"seed": 99}))
    hold(store, bucket, waiting.model_copy(update={"attempt": 3}))  # the door re-rendered: the hall's attempt 3 waits
    assert regenerated(store, bucket, retry) is None

    other = "j-chain-regeneration-2"
    [waiting] = segment_requests(board, other, 2)
    hold(store, bucket, waiting)
    [first] = release(store, bucket, _generated(other, 1, attempt=1))
    retry = SegmentRequested.retry(first, 2, spec=first.spec.model_copy(update={"seed": 99}))
    sent = regenerated(store, bucket, retry)
    assert sent is not None
    assert (sent.attempt, sent.spec.seed) == (2, 99)
    assert sent.spec.start_frame == first.spec.start_frame  # the door's newest last frame is still its first attempt's
    assert regenerated(store, bucket, retry) == sent  # a redelivered check: the same request, the same id
    [after] = release(store, bucket, _generated(other, 1, attempt=2))
    assert (after.attempt, after.spec.seed) == (3, 99)  # type: ignore[attr-defined]
