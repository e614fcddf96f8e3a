"""The job ledger on a real nats-server: compare-and-set, the film trigger once, cancel, the fold's rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reelforge.stack import local_stack
from reelforge_shared.bus import Bus
from reelforge_shared.events import (
    FilmRequested,
    JobCancelled,
    JobSubmitted,
    ModelInfo,
    QaGate,
    QaReport,
    SegmentDelivered,
    SegmentFailed,
    SegmentGenerated,
)
from reelforge_shared.jobs import JobRecord, Ledger, fold

MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)
QA = QaReport(passed=True, gates={"technical": QaGate(score=1.0, threshold=0.5, passed=True)})


def delivered(job: str, n: int, attempt: int = 1) -> SegmentDelivered:
    return SegmentDelivered(
        job_id=job,
        index=n,
        segment_id=f"s{n}",
        attempt=attempt,
        video_key=f"v{n}",
        delivery_bucket="b",
        delivery_key=f"d{n}",
        url="http://x",
        duration_s=1.0,
        qa=QA,
        model=MODEL,
    )


def submitted(job: str, count: int) -> JobSubmitted:
    return JobSubmitted(job_id=job, title="t", segment_count=count, duration_s=count, storyboard_key="k")


def test_the_last_delivery_requests_the_film_and_a_repeat_requests_the_same_version() -> None:
    record = JobRecord(job_id="j")
    assert fold(record, submitted("j", 2)) == []
    assert fold(record, delivered("j", 1)) == []
    first = fold(record, delivered("j", 2))
    assert [(type(e), e.version) for e in first] == [(FilmRequested, 1)]
    assert record.status == "running"
    changes = record.change_id
    fold(record, FilmRequested(job_id="j", segment_count=2))
    assert record.status == "film_encoding"
    assert record.change_id == changes + 1
    again = fold(record, delivered("j", 2))  # redelivered after a crash between the write and the publish
    assert [(e.dedup_id()) for e in again] == [first[0].dedup_id()]
    assert record.change_id == changes + 1


def test_a_cancelled_job_requests_no_film_and_a_failure_is_terminal() -> None:
    record = JobRecord(job_id="j")
    fold(record, submitted("j", 1))
    fold(record, JobCancelled(job_id="j"))
    assert fold(record, delivered("j", 1)) == []
    assert record.status == "cancelled"
    failed = JobRecord(job_id="k")
    fold(failed, SegmentFailed(job_id="k", index=1, segment_id="a", stage="generator", error="boom"))
    assert failed.status == "failed"
    assert failed.segments[1].error == "generator: boom"
    fold(
        failed,
        SegmentGenerated(
            job_id="k",
            index=1,
            segment_id="a",
            attempt=1,
            frames_prefix="p",
            frame_count=1,
            fps=1,
            width=8,
            height=8,
            model=MODEL,
        ),
    )
    assert failed.segments[1].stage == "failed"  # stages never move back


async def test_concurrent_writers_all_land_through_compare_and_set(settings) -> None:
    buses = [await Bus.connect(settings) for _ in range(4)]
    try:
        ledgers = [await Ledger.open(bus) for bus in buses]
        await ledgers[0].create(JobRecord(job_id="j-cas"))

        def touch(record: JobRecord) -> None:
            record.record("test.touch")

        await asyncio.gather(*(ledgers[i % 4].update("j-cas", touch) for i in range(40)))
        changes = await ledgers[0].changes("j-cas")
        assert [c.id for c in changes] == list(range(1, 42))  # the creation, then 40 touches, none lost
        entry = await ledgers[0].kv.get("job.j-cas")
        stale = entry.revision - 1
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            await ledgers[1].kv.update("job.j-cas", b"{}", last=stale)
            raise AssertionError("a stale revision was accepted")
        except KeyWrongLastSequenceError:
            pass
    finally:
        for bus in buses:
            await bus.close()


async def _stream_count(bus: Bus, subject: str) -> int:
    info = await bus.js.stream_info(bus.stream, subjects_filter=bus.subject(FilmRequested) if subject == "film" else subject)
    return sum((info.state.subjects or {}).values())


async def test_duplicate_and_concurrent_deliveries_request_the_film_exactly_once(overrides, event_log, tmp_path: Path) -> None:
    async with local_stack(tmp_path, names=["gateway"], **overrides) as stack:
        bus = await Bus.connect(stack.settings)
        try:
            ledger = await Ledger.open(bus)
            await bus.publish(submitted("j-film", 3))
            # Each delivery three times, each copy past de-duplication (as a redelivery would be), all at once.
            copies = [(d, f"copy-{n}-{c}") for n in (1, 2, 3) for c in range(3) for d in [delivered("j-film", n)]]
            await asyncio.gather(
                *(bus.js.publish(bus.subject(d), d.model_dump_json().encode(), headers={"Nats-Msg-Id": mid}) for d, mid in copies)
            )
            await event_log.wait_for(lambda: event_log.of(FilmRequested), timeout=60)
            consumer = "gateway-segment-delivered"
            for _ in range(600):  # until the observer has handled all nine copies
                info = await bus.js.consumer_info(bus.stream, consumer)
                if info.ack_floor.consumer_seq >= 9 and info.num_ack_pending == 0:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"observer still busy: {info}")
            assert await _stream_count(bus, "film") == 1
            record = await ledger.get("j-film")
            assert record.status == "film_encoding"
            assert record.film_version == 1
            assert not record.film_wanted
            assert {s.stage for s in record.segments.values()} == {"delivered"}
        finally:
            await bus.close()


async def test_resume_requests_failed_segments_again_with_the_same_attempt_and_ignores_the_old_failures(settings) -> None:
    from reelforge_shared.jobs import resume_job
    from reelforge_shared.storyboard import parse_storyboard

    board = parse_storyboard({"segments": [{"id": "s1", "prompt": "a"}, {"id": "s2", "prompt": "b"}]})
    published: list = []

    class Recording:  # the bus's publish, recorded (the fault suite runs the real one)
        async def publish(self, event) -> None:
            published.append(event)

    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        await ledger.create(JobRecord(job_id="j-resume"))
        for event in (
            submitted("j-resume", 2),
            delivered("j-resume", 1),
            SegmentFailed(job_id="j-resume", index=2, segment_id="s2", stage="generator", error="s3 down"),
        ):
            await ledger.apply(event)
        record = await resume_job(ledger, Recording(), board, "j-resume")
        assert record.status == "running"
        assert record.resume == 1
        assert record.segments[2].stage == "queued"
        [again] = published
        assert (again.index, again.attempt, again.resume) == (2, 1, 1)  # same attempt: the same keys, what is stored is kept
        assert again.dedup_id() != again.model_copy(update={"resume": 0}).dedup_id()  # a new event to the bus
        stale = SegmentFailed(job_id="j-resume", index=2, segment_id="s2", stage="generator", error="s3 down")
        record, _ = await ledger.apply(stale)  # a redelivered failure of the run that failed
        assert record.status == "running"
        assert record.segments[2].stage == "queued"
        assert (await resume_job(ledger, Recording(), board, "j-resume")).resume == 1  # not failed: no second resume
        assert [e.dedup_id() for e in published[1:]] == [again.dedup_id()]  # the same request again, de-duplicated
        record, publish = await ledger.apply(delivered("j-resume", 2).model_copy(update={"resume": 1}))
        assert [(type(e), e.version, e.resume) for e in publish] == [(FilmRequested, 1, 1)]
        # failing in the film stage: a resume requests the same film version again, under the next resume
        await ledger.apply(FilmRequested(job_id="j-resume", segment_count=2, resume=1).failure("encoder", "s3 down"))
        published.clear()
        record = await resume_job(ledger, Recording(), board, "j-resume")
        assert record.status == "film_encoding"
        assert [(type(e), e.version, e.resume) for e in published] == [(FilmRequested, 1, 2)]
    finally:
        await bus.close()


async def test_resume_of_a_job_that_failed_before_its_film_was_requested_requests_version_1(settings) -> None:
    from reelforge_shared.events import JobFailed
    from reelforge_shared.jobs import resume_job
    from reelforge_shared.storyboard import parse_storyboard

    published: list = []

    class Recording:
        async def publish(self, event) -> None:
            published.append(event)

    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        await ledger.apply(submitted("j-early", 1))
        await ledger.apply(JobFailed(job_id="j-early", stage="gateway", error="s3 down"))
        record, publish = await ledger.apply(delivered("j-early", 1))  # lands after the job failed: no film then
        assert record.status == "failed"
        assert publish == []
        assert record.film_version == 0
        board = parse_storyboard({"segments": [{"id": "s1", "prompt": "a"}]})
        record = await resume_job(ledger, Recording(), board, "j-early")
        assert record.status == "film_encoding"
        assert [(type(e), e.version, e.resume) for e in published] == [(FilmRequested, 1, 1)]
    finally:
        await bus.close()


async def test_the_film_request_names_each_segments_delivered_attempt_from_the_store_alone(settings) -> None:
    """The store loads one segment per write, yet the film request names every segment's take (no S3 marker)."""
    from reelforge_shared.jobs import transitions

    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        await ledger.create(JobRecord(job_id="j-takes"))
        await ledger.apply(submitted("j-takes", 3))
        for n in (1, 2, 3):
            _, publish = await ledger.apply(delivered("j-takes", n))
        assert [e.attempts for e in publish] == [[1, 1, 1]]
        await ledger.apply(publish[0])
        await ledger.update(
            "j-takes",
            lambda r: transitions.rerender(r, 2, "s2", statuses=frozenset({"film_encoding"}), seed=7),
            segments=[2],
        )
        _, publish = await ledger.apply(delivered("j-takes", 2, attempt=2))
        [film] = publish
        assert (type(film), film.version, film.attempts) == (FilmRequested, 2, [1, 2, 1])
        assert [film.delivered_attempt(n) for n in (1, 2, 3)] == [1, 2, 1]
        head = await ledger.head("j-takes")  # a later write that loads only segment 1 keeps segment 2's take
        assert head is not None
        assert head.attempts == {2: 2}
        record, _ = await ledger.apply(delivered("j-takes", 1))
        assert record.delivered_attempts() == [1, 2, 1]
    finally:
        await bus.close()
