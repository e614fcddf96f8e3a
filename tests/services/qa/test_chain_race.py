"""A shot QA regenerates (a gate failed) races the gate failure of the shot that continues from it (issue 18 point 5).

The door fails a gate and is rendered again as attempt 2; its new frames let the hall (``start_from: previous``) go
again as its next attempt. The hall's first attempt, rendered from the door's first last frame, is still in QA and
fails a gate too, so QA asks for the hall's next attempt as well. Both ask the bus for the hall's attempt 2, and the
bus keeps the first of the two (one de-duplication id): whichever comes first, the hall's last attempt must render
from the door's new last frame, no attempt may wait with nothing to let it go, and the QA budget still ends it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from reelforge_qa.gates import Thresholds
from reelforge_qa.handler import QaDeps, handle
from reelforge_shared.bus import Bus
from reelforge_shared.chain import hold, release
from reelforge_shared.events import (
    Event,
    ModelInfo,
    QaGate,
    QaReport,
    SegmentChecked,
    SegmentEncoded,
    SegmentGenerated,
    SegmentRequested,
)
from reelforge_shared.jobs import JobRecord, Ledger, SegmentRecord, plan_rerender
from reelforge_shared.settings import CommonSettings
from reelforge_shared.specs import segment_requests
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard

BOARD = {
    "segments": [
        {"id": "door", "prompt": "a red door opens", "frames": 3},
        {"id": "hall", "prompt": "a hall behind it", "frames": 2, "start_from": "previous"},
    ]
}
MODEL = ModelInfo(name="tiny", pipeline="StableVideoDiffusionPipeline", random_weights=True)
FAILED = QaReport(passed=False, gates={"sharpness": QaGate(score=0.1, threshold=0.5, passed=False)})


def _door_generated(job: str, attempt: int) -> SegmentGenerated:
    """The door's frames (the generator's ``segment.generated``), ``attempt`` 2 being QA's regeneration."""
    return SegmentGenerated(
        job_id=job,
        index=1,
        segment_id="door",
        attempt=attempt,
        frames_prefix=Keys.frames(job, 1, attempt),
        frame_count=3,
        fps=8,
        width=64,
        height=64,
        model=MODEL,
        shot_key=f"{attempt}" * 64,
    )


def _hall_rendered(store: ObjectStore, bucket: str, request: SegmentRequested, report: QaReport) -> SegmentEncoded:
    """The hall's ``request`` as the generator and encoder leave it: its generation record (what it started from) and,
    already scored, its QA report; the ``segment.encoded`` QA reads next."""
    job, attempt = request.job_id, request.attempt
    start = request.spec.start_frame.model_dump() if request.spec.start_frame is not None else None
    store.put_json(bucket, Keys.segment_generation(job, 2, attempt), {"model": "tiny", "start_frame": start})
    store.put_json(bucket, Keys.segment_qa(job, 2, attempt), report.model_dump(mode="json"))
    return SegmentEncoded.follow(
        request,
        video_key=Keys.segment_video(job, 2, attempt),
        frame_count=2,
        fps=8,
        width=64,
        height=64,
        duration_s=0.25,
        model=MODEL,
    )


async def _on_the_bus(bus: Bus, job: str) -> list[SegmentRequested]:
    """The hall's requests the bus kept (the stream's messages, in order)."""
    info = await bus.js.stream_info(bus.stream)
    kept = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(bus.stream, seq)
        if msg.subject == bus.subject(SegmentRequested):
            request = SegmentRequested.model_validate_json(msg.data)
            if request.job_id == job and request.index == 2:
                kept.append(request)
    return kept


@dataclass(slots=True)
class Paused(ObjectStore):
    """The session's S3 store, that runs ``meanwhile`` once just before it reads or writes the key ``at`` names (method,
    key): the other of the two racers running its whole handler between two steps of this one."""

    at: tuple[str, str] = ("", "")
    meanwhile: Callable[[], None] | None = None

    def _pause(self, method: str, key: str) -> None:
        if (method, key) == self.at and self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()

    def get_json(self, bucket: str, key: str) -> Any:
        self._pause("get_json", key)
        return ObjectStore.get_json(self, bucket, key)

    def put_json(self, bucket: str, key: str, value: Any) -> None:
        self._pause("put_json", key)
        ObjectStore.put_json(self, bucket, key, value)


def _hall_waits(store: ObjectStore, bucket: str, job: str) -> QaDeps:
    """The job's storyboard stored and the hall's request held for the door's frames; QA's deps (2 attempts)."""
    board = parse_storyboard(BOARD)
    store.put_json(bucket, Keys.storyboard(job), board.model_dump(mode="json"))
    [waiting] = segment_requests(board, job, 2)
    hold(store, bucket, waiting)
    return QaDeps(store=store, bucket=bucket, thresholds=Thresholds(), max_attempts=2)


async def _last_from_the_doors_new_frame(bus: Bus, job: str) -> SegmentRequested:
    """The hall's last attempt on the bus, checked to start from the door's new last frame and to be asked for once."""
    kept = await _on_the_bus(bus, job)
    last = max(kept, key=lambda r: r.attempt)
    assert last.spec.start_frame is not None
    assert last.spec.start_frame.frame_key == Keys.frame(job, 1, 2, attempt=2)  # the door's new last frame
    assert last.spec.start_frame.shot_key == "2" * 64
    assert sorted(r.attempt for r in kept) == sorted({r.attempt for r in kept})  # each attempt once
    return last


WAITING, MARKER = "waiting", "marker"
# Who starts first, and where it stops while the other runs (None: it finishes first). The frames of the door write the
# marker, read the hall's waiting request and write it again; QA reads the request, writes it, and reads the marker.
RACES = [
    ("qa", None),
    ("chain", None),
    ("chain", ("get_json", WAITING)),
    ("chain", ("put_json", WAITING)),
    ("qa", ("get_json", MARKER)),
    ("qa", ("put_json", WAITING)),
]


@pytest.mark.parametrize(("first", "pause"), RACES, ids=lambda r: "-".join(r) if isinstance(r, tuple) else str(r))
async def test_the_hall_ends_on_the_doors_new_last_frame_whichever_asks_for_its_next_attempt_first(
    first: str, pause: tuple[str, str] | None, settings: CommonSettings, store: ObjectStore
) -> None:
    bucket = settings.work_bucket
    job = f"j-chain-race-{first}" + (f"-{pause[0]}-{pause[1]}" if pause else "")
    deps = _hall_waits(store, bucket, job)
    bus = await Bus.connect(settings)
    try:
        [hall] = release(store, bucket, _door_generated(job, 1))  # the hall, from the door's first last frame
        await bus.publish(hall)
        encoded = _hall_rendered(store, bucket, hall, FAILED)  # in QA, about to fail a gate

        def qa(s: ObjectStore) -> list[Event]:
            return handle(encoded, dataclasses.replace(deps, store=s))

        def chain(s: ObjectStore) -> list[Event]:
            return release(s, bucket, _door_generated(job, 2))  # the door's regeneration rendered

        one, other = (qa, chain) if first == "qa" else (chain, qa)
        finished: list[list[Event]] = []  # in the order the two handlers finish, as they would publish
        if pause is None:
            finished += [one(store), other(store)]
        else:
            method, which = pause
            key = Keys.waiting_request(job, 2) if which == WAITING else Keys.waiting_released(job, 2)
            paused = Paused(store.client, at=(method, key), meanwhile=lambda: finished.append(other(store)))
            finished.append(one(paused))
            assert paused.meanwhile is None  # the other ran while this one waited
        for events in finished:
            for event in events:
                await bus.publish(event)

        last = await _last_from_the_doors_new_frame(bus, job)
        # Nothing waits for frames that have been rendered already: the stored request is the one last let go.
        stored = SegmentRequested.model_validate(store.get_json(bucket, Keys.waiting_request(job, 2)))
        assert stored.attempt == last.attempt

        # The hall's last attempt fails a gate too: the QA budget (2 attempts) delivers it flagged, nothing renders again.
        after = handle(_hall_rendered(store, bucket, last, FAILED), deps)
        assert [type(e) for e in after] == [SegmentChecked]
        assert after[0].attempt == last.attempt
    finally:
        await bus.close()


# Who starts first, and where it stops while the other runs (None: it finishes first). The re-render removes the hall's
# marker, reads its waiting request and holds the next attempt; QA reads the request, writes it, and reads the marker.
RERENDER_RACES = [
    ("qa", None),
    ("api", None),
    ("api", ("get_json", WAITING)),
    ("api", ("put_json", WAITING)),
    ("qa", ("get_json", MARKER)),
    ("qa", ("put_json", WAITING)),
]


@pytest.mark.parametrize(("first", "pause"), RERENDER_RACES, ids=lambda r: "-".join(r) if isinstance(r, tuple) else str(r))
async def test_the_hall_ends_on_the_doors_new_last_frame_whether_a_rerender_of_the_door_or_qa_asks_first(
    first: str, pause: tuple[str, str] | None, settings: CommonSettings, store: ObjectStore
) -> None:
    """A re-render of a shot races QA's regeneration of the shot that continues from it (issue 18 point 5).

    The hall continues from the door (``start_from: previous``). Its first attempt fails a gate, so QA asks for its
    attempt 2; meanwhile the door is re-rendered (the API's re-render, :func:`plan_rerender`), which moves the hall to its
    next attempt in the job's ledger and holds it for the door's new frames. The ledger has not folded QA's request yet,
    so both would hand out the hall's attempt 2: one de-duplication id, and the bus drops the second of the two, maybe the
    one from the door's new last frame. Whichever comes first, and when each stops while the other runs, the hall's last
    attempt must start from the door's new last frame, no attempt may be asked for twice, and the ledger must wait for
    the attempt that renders last.
    """
    bucket = settings.work_bucket
    job = f"j-rerender-race-{first}" + (f"-{pause[0]}-{pause[1]}" if pause else "")
    deps = _hall_waits(store, bucket, job)
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        segments = {
            1: SegmentRecord(index=1, id="door", stage="delivered", shot_key="1" * 64),
            2: SegmentRecord(index=2, id="hall", stage="encoded"),  # QA's attempt 2 of it not folded yet
        }
        await ledger.create(JobRecord(job_id=job, status="running", segment_count=2, segments=segments))
        [hall] = release(store, bucket, _door_generated(job, 1))  # the hall, from the door's first last frame
        await bus.publish(hall)
        encoded = _hall_rendered(store, bucket, hall, FAILED)  # in QA, about to fail a gate
        loop = asyncio.get_running_loop()

        def qa(s: ObjectStore) -> list[Event]:
            return handle(encoded, dataclasses.replace(deps, store=s))

        async def api(s: ObjectStore) -> list[Event]:
            _, door = await plan_rerender(ledger, s, bucket, job, 1, seed=4242, statuses=frozenset({"running"}))
            assert door is not None  # the ledger published it with its write
            assert door.attempt == 2
            return []

        finished: list[list[Event]] = []  # in the order the two finish, as they would publish
        if pause is None:
            if first == "qa":
                finished += [qa(store), await api(store)]
            else:
                finished += [await api(store), qa(store)]
        else:
            method, which = pause
            key = Keys.waiting_request(job, 2) if which == WAITING else Keys.waiting_released(job, 2)
            if first == "api":
                paused = Paused(store.client, at=(method, key), meanwhile=lambda: finished.append(qa(store)))
                finished.append(await api(paused))
            else:  # QA in a thread, stopped while the re-render runs on the loop

                def meanwhile() -> None:
                    finished.append(asyncio.run_coroutine_threadsafe(api(store), loop).result())

                paused = Paused(store.client, at=(method, key), meanwhile=meanwhile)
                finished.append(await asyncio.to_thread(qa, paused))
            assert paused.meanwhile is None  # the other ran while this one waited
        for events in finished:
            for event in events:
                await bus.publish(event)
        for event in release(store, bucket, _door_generated(job, 2)):  # the door's re-render rendered
            await bus.publish(event)

        last = await _last_from_the_doors_new_frame(bus, job)
        record = await ledger.get(job)
        assert record is not None
        assert record.segments[2].attempt == last.attempt  # the ledger waits for the attempt that renders last
        stored = SegmentRequested.model_validate(store.get_json(bucket, Keys.waiting_request(job, 2)))
        assert stored.attempt == last.attempt
    finally:
        await bus.close()
