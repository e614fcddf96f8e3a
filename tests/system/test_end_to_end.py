"""A storyboard through all five services on real NATS, S3, ffmpeg and diffusers (tiny model)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_gateway.submit import submit_job
from reelforge_shared.bus import Bus
from reelforge_shared.events import (
    FilmEncoded,
    FilmRequested,
    JobCompleted,
    SegmentDelivered,
    SegmentEncoded,
    SegmentFailed,
    SegmentGenerated,
    SegmentRequested,
)
from reelforge_shared.flow import event_subject
from reelforge_shared.media import probe
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard

STORYBOARD = {
    "title": "Three shots",
    "style": {"prompt_prefix": "documentary still", "negative_prompt": "blurry", "lighting": "daylight 5600K"},
    "output": {"width": 320, "height": 180},
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "locations": {"field": {"description": "a bright farmland field", "seed": 5000}},
    "segments": [
        {"id": "open", "prompt": "walks into the field", "characters": ["hero"], "location": "field", "frames": 6, "fps": 3},
        {
            "id": "turn",
            "prompt": "looks at the sky",
            "location": "field",
            "frames": 4,
            "fps": 4,
            "transition": {"type": "dissolve", "duration": 1.0},
        },
        {"id": "close", "prompt": "sits down", "characters": ["hero"], "location": "field", "frames": 5, "fps": 2},
    ],
}
FAST = {"steps": 3, "batch_size": 8}


async def _subject_counts(settings) -> dict[str, int]:
    bus = await Bus.connect(settings)
    info = await bus.js.stream_info(bus.stream, subjects_filter=f"{settings.subject_prefix}.>")
    await bus.close()
    counts: Counter[str] = Counter()
    for subject, n in (info.state.subjects or {}).items():
        counts[event_subject(subject.split(".", 1)[1])] += n  # a failure's stage is not part of the count
    return dict(counts)


async def _consumer_idle(settings, durable: str, handled: int) -> None:
    """Until the consumer has handled ``handled`` messages in all and has none outstanding."""
    bus = await Bus.connect(settings)
    try:
        for _ in range(600):
            info = await bus.js.consumer_info(bus.stream, durable)
            acked = info.ack_floor.stream_seq >= info.delivered.stream_seq
            if acked and info.num_pending == 0 and info.delivered.consumer_seq >= handled:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{durable} still busy: {info}")
    finally:
        await bus.close()


async def test_storyboard_becomes_a_film_through_all_services(overrides, event_log, tmp_path: Path) -> None:
    async with local_stack(tmp_path / "state", **overrides, **FAST) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            job_id = (await client.post("/v1/jobs", json=STORYBOARD)).json()["job_id"]
            done = await event_log.wait_for(lambda: event_log.of(JobCompleted), timeout=300)
            settings = stack.settings
            store = ObjectStore.from_settings(settings)

            # The film, read back with PyAV: size, codec, duration = sum of segments (the dissolve does not shorten it).
            film = store.get_file(settings.delivery_bucket, DeliveryKeys.film(job_id), tmp_path / "final.mp4")
            info = probe(film)
            assert (info.width, info.height, info.codec, info.pix_fmt) == (320, 180, "h264", "yuv420p")
            assert info.duration_s == pytest.approx(6 / 3 + 4 / 4 + 5 / 2, abs=0.01)
            assert info.fps == 4
            assert info.frame_count == 22
            assert done[0].duration_s == pytest.approx(5.5, abs=0.01)
            assert done[0].segment_count == 3

            # Every segment delivered, with QA scores, named by its key (no presigned URL on the bus); the report lists them.
            delivered = sorted(event_log.of(SegmentDelivered), key=lambda e: e.index)
            assert [(d.index, d.segment_id) for d in delivered] == [(1, "open"), (2, "turn"), (3, "close")]
            assert all(d.qa.gates["technical"].passed and d.url is None for d in delivered)
            report = store.get_json(settings.delivery_bucket, DeliveryKeys.report(job_id))
            assert [s["id"] for s in report["segments"]] == ["open", "turn", "close"]
            # Every segment's prompt as the model got it, counted by its tokenizer, none dropped; its render figures.
            assert all(s["prompt_tokens"] > 0 and s["prompt_tokens_dropped"] == 0 for s in report["segments"])
            assert all(s["timings"]["render_s"] > 0 and s["timings"]["s_per_frame"] > 0 for s in report["segments"])
            assert report["model"]["random_weights"] is True
            assert report["film"]["duration_s"] == pytest.approx(5.5, abs=0.01)
            assert [b["requested"] for b in report["film_qa"]["boundaries"]] == ["dissolve", "cut"]
            assert done[0].report_html_key
            assert "<svg" in store.get_bytes(settings.delivery_bucket, done[0].report_html_key).decode()
            for d in delivered:
                segment = probe(store.get_file(settings.delivery_bucket, d.delivery_key, tmp_path / f"{d.index}.mp4"))
                spec = STORYBOARD["segments"][d.index - 1]
                assert (segment.frame_count, segment.fps, segment.width) == (spec["frames"], spec["fps"], 320)

            # The gateway's state document followed the job.
            for _ in range(300):
                status = (await client.get(f"/v1/jobs/{job_id}")).json()
                if status["status"] == "completed":
                    break
                await asyncio.sleep(0.1)
            assert status["status"] == "completed"
            assert status["film_key"] == DeliveryKeys.film(job_id)
            assert {s["stage"] for s in status["segments"].values()} == {"delivered"}

            # Redelivery: the same SegmentGenerated and FilmRequested arrive again (new ids, so JetStream keeps them).
            film_stat = store.client.stat_object(settings.work_bucket, Keys.film(job_id))
            segment_stat = store.client.stat_object(settings.work_bucket, Keys.segment_video(job_id, 2))
            bus = await Bus.connect(settings)
            generated = next(e for e in event_log.of(SegmentGenerated) if e.index == 2)
            requested = event_log.of(FilmRequested)[0]
            for i, again in enumerate([generated, requested], start=1):
                headers = {"Nats-Msg-Id": f"redelivery-{i}"}
                await bus.js.publish(bus.subject(again), again.model_dump_json().encode(), headers=headers)
            await bus.close()
            await _consumer_idle(settings, "encoder-segment-generated", handled=4)
            await _consumer_idle(settings, "encoder-film-requested", handled=2)

    counts = await _subject_counts(settings)
    assert counts["segment.encoded"] == 3
    assert counts["film.encoded"] == 1
    assert counts["film.checked"] == 1
    assert counts["job.completed"] == 1
    assert counts["film.requested"] == 2  # the original and the one this test forced past de-duplication
    assert store.client.stat_object(settings.work_bucket, Keys.film(job_id)).last_modified == film_stat.last_modified
    assert store.client.stat_object(settings.work_bucket, Keys.segment_video(job_id, 2)).etag == segment_stat.etag
    delivered_keys = set(store.list_keys(settings.delivery_bucket, f"{job_id}/"))
    assert {DeliveryKeys.film(job_id), DeliveryKeys.report(job_id), f"{job_id}/report.html"} <= delivered_keys
    assert len([k for k in delivered_keys if "/segments/" in k]) == 3


async def test_a_segment_that_fails_for_good_fails_the_job_instead_of_hanging(overrides, event_log, tmp_path: Path) -> None:
    async with local_stack(tmp_path / "state", names=["gateway", "generator"], **overrides, **FAST) as stack:
        settings = stack.settings
        bus = await Bus.connect(settings)
        store = ObjectStore.from_settings(settings)
        board = parse_storyboard({"segments": [{"id": "x", "prompt": "p", "frames": 2}]})
        job = await submit_job(board, bus=bus, store=store, bucket=settings.work_bucket, model=str(tmp_path / "no-such-model"))
        await bus.close()
        failed = await event_log.wait_for(lambda: event_log.of(SegmentFailed), timeout=60)
        assert failed[0].stage == "generator"
        assert "no-such-model" in failed[0].error
        async with httpx.AsyncClient(base_url=stack.gateway_url) as client:
            for _ in range(300):
                status = (await client.get(f"/v1/jobs/{job.job_id}")).json()
                if status["status"] in {"completed", "failed", "cancelled"}:
                    break
                await asyncio.sleep(0.1)
        assert status["status"] == "failed"
        assert status["segments"]["1"]["stage"] == "failed"
        assert "no-such-model" in status["segments"]["1"]["error"]
        assert not event_log.of(SegmentEncoded)
        assert not event_log.of(FilmEncoded)


async def test_a_segment_failing_a_gate_is_regenerated_then_delivered_flagged(overrides, event_log, tmp_path: Path) -> None:
    strict = {"sharpness_threshold": 0.999, "qa_max_attempts": 2}  # no frame is that sharp: every attempt fails
    async with local_stack(tmp_path / "state", **overrides, **FAST, **strict) as stack:
        settings = stack.settings
        bus = await Bus.connect(settings)
        store = ObjectStore.from_settings(settings)
        board = parse_storyboard({"output": {"width": 160, "height": 90}, "segments": [{"id": "x", "prompt": "p", "frames": 3}]})
        job = await submit_job(board, bus=bus, store=store, bucket=settings.work_bucket)
        await bus.close()
        done = await event_log.wait_for(lambda: event_log.of(JobCompleted), timeout=300)
    requested = event_log.of(SegmentRequested)
    assert [(r.attempt, r.spec.seed) for r in requested] == [(1, 1), (2, 1 + 7919)]
    expected_prefixes = [Keys.frames(job.job_id, 1), Keys.frames(job.job_id, 1, 2)]
    assert [g.frames_prefix for g in event_log.of(SegmentGenerated)] == expected_prefixes
    assert done[0].qa_failed_segments == [1]
    report = store.get_json(settings.delivery_bucket, done[0].report_key)
    segment = report["segments"][0]
    assert segment["attempt"] == 2
    assert segment["qa_passed"] is False
    assert "sharpness" in segment["qa_failed_gates"]
    assert [h["attempt"] for h in segment["qa_history"]] == [1, 2]
    assert report["gate_failures"]["sharpness"] == 2
