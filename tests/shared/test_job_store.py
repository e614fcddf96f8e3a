"""The job store's split record on a real nats-server with ``max_payload: 1MB``: no value grows with the job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reelforge_shared.bus import Bus, bootstrap
from reelforge_shared.embedded import EmbeddedServer, start_nats
from reelforge_shared.events import (
    FilmRequested,
    JobCancelled,
    JobSubmitted,
    ModelInfo,
    QaGate,
    QaReport,
    SegmentDelivered,
    SegmentRequested,
)
from reelforge_shared.jobs import JobRecord, JobTooLarge, Ledger, SegmentRecord
from reelforge_shared.jobs.store import status_key
from reelforge_shared.settings import CommonSettings
from reelforge_shared.specs import render_spec
from reelforge_shared.storyboard import parse_storyboard

SEGMENTS = 600
SPEC = render_spec(parse_storyboard({"segments": [{"id": "s1", "prompt": "a scene"}]}), 1)
QA = QaReport(passed=True, gates={"technical": QaGate(score=1.0, threshold=0.5, passed=True)})
MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)


@pytest.fixture(scope="module")
def small_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = start_nats(tmp_path_factory.mktemp("nats-1mb"), extra="max_payload: 1MB\n")
    yield server
    server.stop()


def _cast_board(description_chars: int, segments: int = 1) -> dict:
    cast = {f"c{n}": {"description": f"{n} " + "long description " * (description_chars // 17), "seed": n} for n in range(16)}
    return {
        "title": "many",
        "characters": cast,
        "segments": [{"id": f"s{i}", "prompt": "a scene", "characters": list(cast)} for i in range(1, segments + 1)],
    }


async def test_600_segments_with_long_cast_descriptions_complete_the_ledger_under_a_1mb_max_payload(
    small_nats, tmp_path: Path
) -> None:
    settings = CommonSettings(nats_url=small_nats.url, subject_prefix="big")
    await bootstrap(settings)
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        assert ledger.max_payload == 1024 * 1024  # read from the server on connect
        board = parse_storyboard(_cast_board(1900))
        spec = render_spec(board, 1)
        job = "j-big"
        await ledger.create(JobRecord(job_id=job, title="many", segment_count=SEGMENTS, owner="alice"))
        await ledger.apply(JobSubmitted(job_id=job, title="many", segment_count=SEGMENTS, duration_s=1, storyboard_key="k"))
        for n in range(1, SEGMENTS + 1):
            requested = SegmentRequested(job_id=job, index=n, segment_id=f"s{n}", spec=spec)
            await ledger.apply(requested)
        assert len(requested.model_dump_json()) > 20_000  # each segment carries the whole cast: 12 MB over the job
        films = []
        for n in range(1, SEGMENTS + 1):
            _, publish = await ledger.apply(
                SegmentDelivered(
                    job_id=job,
                    index=n,
                    segment_id=f"s{n}",
                    video_key=f"v{n}",
                    delivery_bucket="b",
                    delivery_key=f"d{n}",
                    url="http://x",
                    duration_s=1.0,
                    qa=QA,
                    model=MODEL,
                )
            )
            films += publish
        assert [(type(e), e.version) for e in films] == [(FilmRequested, 1)]
        record = await ledger.get(job)
        assert record is not None
        assert record.status == "running"
        assert record.count("delivered") == SEGMENTS
        assert record.segments[SEGMENTS].spec == spec
        assert record.segments[1].delivery_key == "d1"
        assert len(await ledger.changes(job)) == record.change_id == 1 + 2 * SEGMENTS  # created, then each request and delivery
        largest = max(len(e.value or b"") for e in [await ledger.kv.get(k) for k in await ledger.kv.keys()])
        assert largest < 100_000  # the head is small; each segment is its own value
    finally:
        await bus.close()


async def test_a_segment_that_cannot_fit_max_payload_is_refused_naming_the_limit(small_nats) -> None:
    settings = CommonSettings(nats_url=small_nats.url, subject_prefix="refused")
    await bootstrap(settings)
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        board = parse_storyboard(_cast_board(1900, segments=2))
        record = JobRecord(job_id="j-small", segment_count=2)
        ledger.check_fits(record, board)  # 16 long descriptions fit a 1 MB message
        ledger.max_payload = 20_000  # a server configured smaller than one segment's spec
        with pytest.raises(JobTooLarge) as refused:
            ledger.check_fits(record, board)
        message = str(refused.value)
        assert refused.value.limit < 20_000
        assert "max_payload" in message
        assert str(refused.value.limit) in message
        assert await ledger.get("j-small") is None  # nothing stored
    finally:
        await bus.close()


async def test_twenty_concurrent_reservations_at_cap_one_hold_exactly_one_place_across_connections(settings) -> None:
    buses = [await Bus.connect(settings) for _ in range(4)]  # four gateway replicas
    try:
        ledgers = [await Ledger.open(bus) for bus in buses]
        held = await asyncio.gather(*(ledgers[i % 4].reserve("alice", f"j-cap-{i}", 1) for i in range(20)))
        winners = [i for i, (ok, _) in enumerate(held) if ok]
        assert len(winners) == 1
        assert all(count == 1 for _, count in held)
        assert (await ledgers[0].reserve("alice", f"j-cap-{winners[0]}", 1))[0]  # the same job keeps its place
        assert (await ledgers[1].reserve("bob", "j-cap-bob", 1))[0]  # per owner
        winner = f"j-cap-{winners[0]}"
        await ledgers[2].create(JobRecord(job_id=winner, owner="alice"))
        await ledgers[2].cancel(winner)  # a finished job gives its place back
        assert (await ledgers[3].reserve("alice", "j-cap-next", 1))[0]
    finally:
        for bus in buses:
            await bus.close()


async def test_finished_jobs_are_swept_whole_after_the_retention_and_listing_reads_the_index(settings) -> None:
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        for n in range(3):
            await ledger.create(JobRecord(job_id=f"j-keep-{n}", owner="alice", segment_count=1))
        await ledger.create(JobRecord(job_id="j-other", owner="bob"))
        await ledger.apply(SegmentRequested(job_id="j-keep-0", index=1, segment_id="s1", spec=SPEC))
        await ledger.cancel("j-keep-0")
        total, page = await ledger.list_jobs(["alice"], limit=2)
        assert total == 3
        assert [r.job_id for r in page] == ["j-keep-2", "j-keep-1"]
        assert [r.job_id for r in (await ledger.list_jobs(["alice"], "cancelled"))[1]] == ["j-keep-0"]
        assert {r.job_id for r in (await ledger.list_jobs(None))[1]} >= {"j-keep-0", "j-keep-1", "j-other"}  # admin
        assert await ledger.sweep(timedelta(days=30)) == 0  # finished just now: kept
        assert await ledger.sweep(timedelta(days=30), now=datetime.now(UTC) + timedelta(days=31)) == 1
        assert await ledger.get("j-keep-0") is None
        assert await ledger.changes("j-keep-0") == []
        left = [k for k in await ledger.kv.keys() if "j-keep-0" in k]
        assert left == [], left  # head, segment, changes and index entries all gone
        assert (await ledger.list_jobs(["alice"]))[0] == 2
        assert await ledger.get("j-keep-1") is not None
        # One owner per job, stored at creation; reads for an owner see only theirs (the API's 404 for others).
        assert await ledger.get("j-keep-1", owner="bob") is None
        assert await ledger.head("j-keep-1", owner="bob") is None
        assert (await ledger.get("j-keep-1", owner="alice")) is not None
        await ledger.apply(JobSubmitted(job_id="j-bus", title="t", segment_count=1, duration_s=1, storyboard_key="k"))
        bus_job = await ledger.head("j-bus", owner="local")  # put straight onto the bus: owner `local`
        assert bus_job is not None
        assert bus_job.owner == "local"
        assert [r.job_id for r in (await ledger.list_jobs(["local"]))[1]] == ["j-bus"]
    finally:
        await bus.close()


async def _count(bus: Bus, event: type) -> int:
    info = await bus.js.stream_info(bus.stream, subjects_filter=bus.subject(event))
    return sum((info.state.subjects or {}).values())


async def test_a_publish_failure_after_the_write_is_repaired_until_the_event_lands_once(settings) -> None:
    bus, broken = await Bus.connect(settings), await Bus.connect(settings)
    try:
        await broken.close()  # a real failure: every publish through it raises
        writer = Ledger(await bus.key_value("jobs"), js=bus.js, bus=broken)
        for job in ("j-out-1", "j-out-2"):
            await writer.create(JobRecord(job_id=job, owner="alice"))
            record, cancelled = await writer.cancel(job, by="alice")
            assert cancelled
            assert record is not None
            assert record.status == "cancelled"
        assert await _count(bus, JobCancelled) == 0  # its event did not
        ledger = await Ledger.open(bus)
        await ledger.apply(SegmentRequested(job_id="j-out-2", index=1, segment_id="s1", spec=SPEC))  # the next writer
        assert await _count(bus, JobCancelled) == 1
        assert await ledger.repair() == 1  # j-out-1, nobody wrote it since: the periodic upkeep
        assert await _count(bus, JobCancelled) == 2
        assert await ledger.repair() == 0
        assert await _count(bus, JobCancelled) == 2
    finally:
        await bus.close()


async def test_a_job_past_its_deadline_is_cancelled_with_reason_deadline(settings) -> None:
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        now = datetime.now(UTC)
        await ledger.create(JobRecord(job_id="j-late", owner="alice", deadline_at=now - timedelta(seconds=1)))
        await ledger.create(JobRecord(job_id="j-on-time", owner="alice", deadline_at=now + timedelta(hours=1)))
        assert await ledger.reserve("alice", "j-late", 2) == (True, 1)
        await ledger.upkeep(None)
        late, on_time = await ledger.get("j-late"), await ledger.get("j-on-time")
        assert late is not None
        assert late.status == "cancelled"
        assert late.cancel_reason == "deadline"
        assert on_time is not None
        assert on_time.status == "queued"
        assert "deadline" in (await ledger.changes("j-late"))[-1].detail
        assert await _count(bus, JobCancelled) == 1
        assert (await ledger.reserve("alice", "j-next", 1))[0]  # its place in the cap was given back
    finally:
        await bus.close()


def test_the_eta_says_when_a_deadline_cannot_be_met() -> None:
    from reelforge_shared.jobs.eta import deadline_met, queue

    now = datetime.now(UTC)
    timed = {"queued": now, "generated": now + timedelta(seconds=100)}
    ahead = JobRecord(job_id="j-a", segment_count=1, created_at=now, segments={1: SegmentRecord(index=1, id="s", reached=timed)})
    later, soon = now + timedelta(seconds=1), now + timedelta(seconds=60)
    tight = JobRecord(job_id="j-b", segment_count=1, created_at=later, deadline_at=soon)
    loose = tight.model_copy(update={"job_id": "j-c", "deadline_at": now + timedelta(hours=1)})
    position, eta = queue(tight, [ahead, tight])
    assert position == 2
    assert eta is not None
    assert eta >= 100
    assert deadline_met(tight, eta, now) is False
    assert deadline_met(loose, eta, now) is True
    assert deadline_met(ahead, eta, now) is None  # no deadline


async def test_the_eta_sample_names_the_latest_completions_without_reading_the_history(settings) -> None:
    """A job view's ETA is judged by the jobs completed last (``recent``), not by the newest-created finished ones."""
    from reelforge_shared.events import JobCompleted
    from reelforge_shared.jobs.store import RECENT

    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        count = RECENT + 5
        for n in range(count):
            await ledger.create(JobRecord(job_id=f"j-eta-{n:02d}", segment_count=1, film_version=1))
        for n in reversed(range(count)):  # the oldest-created job completes last
            done = JobCompleted(
                job_id=f"j-eta-{n:02d}",
                delivery_bucket="b",
                film_key="f",
                film_url="http://x",
                report_key="r",
                report_url="http://x",
                duration_s=1.0,
                segment_count=1,
            )
            await ledger.apply(done)
        await ledger.create(JobRecord(job_id="j-eta-queued", segment_count=1))
        sample = {r.job_id for r in await ledger.eta_sample()}
        assert sample == {"j-eta-queued"} | {f"j-eta-{n:02d}" for n in range(RECENT)}
        assert json.loads((await ledger.kv.get("recent")).value)[0] == "j-eta-00"
    finally:
        await bus.close()


async def test_listing_without_a_status_pages_the_created_index_from_its_end_and_counts_it_exactly(settings) -> None:
    """Pages and totals from the created index: newest first, other keys in between, a swept job gone without a trace."""
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        for n in range(30):
            await ledger.create(JobRecord(job_id=f"j-page-{n:02d}", owner=("alice", "bob")[n % 2], segment_count=1))
            await ledger.apply(SegmentRequested(job_id=f"j-page-{n:02d}", index=1, segment_id="s1", spec=SPEC))
        total, page = await ledger.list_jobs(None, limit=5)
        assert total == 30
        assert [r.job_id for r in page] == [f"j-page-{n:02d}" for n in (29, 28, 27, 26, 25)]
        total, page = await ledger.list_jobs(None, limit=10, offset=25)
        assert [r.job_id for r in page] == [f"j-page-{n:02d}" for n in (4, 3, 2, 1, 0)]
        total, page = await ledger.list_jobs(["alice"], limit=3, offset=1)
        assert total == 15
        assert [r.job_id for r in page] == ["j-page-26", "j-page-24", "j-page-22"]
        await ledger.cancel("j-page-29")
        assert await ledger.sweep(timedelta(days=30), now=datetime.now(UTC) + timedelta(days=31)) == 1
        total, page = await ledger.list_jobs(None, limit=2)
        assert total == 29
        assert [r.job_id for r in page] == ["j-page-28", "j-page-27"]
        assert (await ledger.list_jobs(["bob"]))[0] == 14
    finally:
        await bus.close()


async def test_jobs_stored_before_the_created_index_get_their_entry_once(settings) -> None:
    from reelforge_shared.jobs.store import CREATED_INDEXED, created_key

    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        old = JobRecord(job_id="j-old", owner="alice", segment_count=1)
        await ledger.create(old)
        await ledger._drop(created_key(old))  # as a store from before: listed by status only
        assert (await ledger.list_jobs(["alice"]))[0] == 0
        assert await ledger.index_created() == 1
        total, page = await ledger.list_jobs(["alice"])
        assert (total, [r.job_id for r in page]) == (1, ["j-old"])
        await ledger._drop(created_key(old))
        assert await ledger.index_created() == 0  # once per store: the marker says it was done
        assert (await ledger.kv.get(CREATED_INDEXED)).value == b"1"
    finally:
        await bus.close()


async def _subjects(ledger: Ledger, bus: Bus, pattern: str) -> dict[str, int]:
    """The bucket's stream subjects matching ``pattern`` (a key pattern) and their message counts: live keys and markers."""
    status = await ledger.kv.status()
    stream, prefix = status.stream_info.config.name, f"$KV.{status.bucket}."
    info = await bus.js.stream_info(stream, subjects_filter=prefix + pattern)
    return {s.removeprefix(prefix): n for s, n in (info.state.subjects or {}).items()}


async def test_listing_by_status_pages_the_owner_and_status_index_from_its_end_and_counts_it_exactly(settings) -> None:
    """A status-filtered page is read from the end of one owner's entries in that status: the latest to reach it first.

    A job that leaves the status leaves no marker among them (the count stays exact), an entry left by a write
    that lost a race is dropped from the page (which is still filled), and the sweep leaves nothing.
    """
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        for n in range(12):
            await ledger.create(JobRecord(job_id=f"j-st-{n:02d}", owner=("alice", "bob")[n % 2], segment_count=1))
        for n in (4, 0, 8, 2, 5):  # cancelled in this order (5 is bob's)
            await ledger.cancel(f"j-st-{n:02d}")
        total, page = await ledger.list_jobs(["alice"], "cancelled", limit=3)
        assert total == 4
        assert [r.job_id for r in page] == ["j-st-02", "j-st-08", "j-st-00"]  # the latest cancelled first
        total, page = await ledger.list_jobs(["alice"], "cancelled", limit=3, offset=3)
        assert (total, [r.job_id for r in page]) == (4, ["j-st-04"])
        total, page = await ledger.list_jobs(["alice"], "queued")
        assert (total, [r.job_id for r in page]) == (2, ["j-st-10", "j-st-06"])
        total, page = await ledger.list_jobs(None, "cancelled", limit=2)  # admin: every owner's entries in the status
        assert (total, [r.job_id for r in page]) == (5, ["j-st-05", "j-st-02"])
        entries = await _subjects(ledger, bus, "sts.alice.>")
        assert sorted(k.split(".")[2] for k in entries) == ["cancelled"] * 4 + ["queued"] * 2
        assert set(entries.values()) == {1}  # one message per live entry: the queued ones left without a marker
        # An entry that lost a race (its job moved on since): dropped from the page and the index, the page still full.
        stale = await ledger.head("j-st-10")
        assert stale is not None
        await ledger.kv.create(status_key(stale, "cancelled"), b"")
        total, page = await ledger.list_jobs(["alice"], "cancelled", limit=2)
        assert [r.job_id for r in page] == ["j-st-02", "j-st-08"]
        assert (await ledger.list_jobs(["alice"], "cancelled"))[0] == 4
        assert await ledger.sweep(timedelta(days=30), now=datetime.now(UTC) + timedelta(days=31)) == 5
        assert (await ledger.list_jobs(["alice"], "cancelled"))[0] == 0
        assert list(await _subjects(ledger, bus, "sts.*.cancelled.>")) == []
    finally:
        await bus.close()


async def test_jobs_stored_before_the_status_index_get_their_entry_at_the_first_upkeep_once(settings) -> None:
    """A store from before lists by ``idx.{owner}.{status}.{created}.{job}``: the first upkeep enters each job under its
    head's status (an old entry that says otherwise is not copied) and removes the old index without a trace."""
    from reelforge_shared.jobs.store import STATUS_INDEXED, index_key

    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        jobs = [JobRecord(job_id=f"j-was-{n}", owner="alice", segment_count=1) for n in range(3)]
        for record in jobs:
            await ledger.create(record)
        await ledger.cancel("j-was-1")
        for record in jobs:  # as the store held them before: the old index only, with a marker where an entry left
            head = await ledger.head(record.job_id)
            assert head is not None
            await ledger._drop(status_key(head))
            await ledger.kv.put(index_key(head), b"")
        await ledger.kv.put(index_key(jobs[1], "queued"), b"")  # left by a write that lost a race: its head says cancelled
        await ledger.kv.put(index_key(jobs[0], "running"), b"")
        await ledger.kv.delete(index_key(jobs[0], "running"))
        assert (await ledger.list_jobs(["alice"], "queued"))[0] == 0
        assert await ledger.index_statuses() == 3
        assert [r.job_id for r in (await ledger.list_jobs(["alice"], "queued"))[1]] == ["j-was-2", "j-was-0"]
        assert [r.job_id for r in (await ledger.list_jobs(["alice"], "cancelled"))[1]] == ["j-was-1"]
        assert list(await _subjects(ledger, bus, "idx.>")) == []  # the old index is gone, markers too
        assert await ledger.index_statuses() == 0  # once per store: the marker says it was done
        assert (await ledger.kv.get(STATUS_INDEXED)).value == b"3"
        await ledger.cancel("j-was-2")  # and it follows the transitions from then on
        assert [r.job_id for r in (await ledger.list_jobs(["alice"], "queued"))[1]] == ["j-was-0"]
    finally:
        await bus.close()


def test_the_job_store_reads_its_stream_through_public_nats_py_api_only() -> None:
    """nats-py's KeyValue keeps its JetStream context, stream name and subject prefix private: the store does not read them."""
    from reelforge_shared.jobs import store

    source = Path(store.__file__).read_text()
    assert [name for name in ("._js", "._stream", "._pre") if name in source] == []


async def test_reading_the_indexes_leaves_no_consumer_behind(settings) -> None:
    """Each read of an index (listings, the job view's queue position, upkeep) uses a short-lived consumer on the
    bucket's stream: once the read is over it must be gone within seconds. A watcher left to nats-py's default
    5-minute inactivity made a client polling GET /v1/jobs/{id} pile up consumers until the server answered
    'maximum consumers limit reached' (err 10026) and the gateway 500."""
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        for n in range(3):
            await ledger.create(JobRecord(job_id=f"j-leak-{n}", owner="alice", segment_count=1))
            await ledger.apply(SegmentRequested(job_id=f"j-leak-{n}", index=1, segment_id="s1", spec=SPEC))
        stream = (await ledger.kv.status()).stream_info.config.name
        before = (await bus.js.stream_info(stream)).state.consumer_count
        for _ in range(10):
            await ledger.active()
            await ledger.list_jobs(["alice", "bob"], status="running")
            await ledger.list_jobs(["alice"], limit=2)
        left = (await bus.js.stream_info(stream)).state.consumer_count
        for _ in range(50):
            if left <= before:
                break
            await asyncio.sleep(0.2)
            left = (await bus.js.stream_info(stream)).state.consumer_count
        assert left <= before, f"{left - before} consumers left on {stream} after the reads"
    finally:
        await bus.close()
