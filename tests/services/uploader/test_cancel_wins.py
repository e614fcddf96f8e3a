"""Cancel wins over the film's delivery: a job cancelled while its film was delivered never completes (issue 16 point 7)."""

from __future__ import annotations

import asyncio

from reelforge_shared.assets import S3AssetRegistry
from reelforge_shared.bus import Bus
from reelforge_shared.events import FilmChecked, JobCompleted
from reelforge_shared.jobs import CancelCheck, JobRecord, Ledger
from reelforge_uploader.delivery import Delivery
from reelforge_uploader.handler import UploaderDeps, handle_film
from reelforge_uploader.webhooks import WebhookDeps


async def test_a_job_cancelled_during_its_film_delivery_publishes_no_job_completed(store, settings) -> None:
    job = "j-cancel-film"
    store.put_bytes(settings.work_bucket, f"jobs/{job}/final.mp4", b"\0" * 1024)
    store.put_json(settings.work_bucket, f"jobs/{job}/report.json", {"segments": [{"index": 1, "qa_passed": True}]})
    film = FilmChecked(
        job_id=job,
        film_key=f"jobs/{job}/final.mp4",
        duration_s=1.0,
        frame_count=24,
        fps=24,
        width=64,
        height=64,
        passed=True,
        report_key=f"jobs/{job}/report.json",
    )
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        await ledger.create(JobRecord(job_id=job, owner="alice", status="delivering"))
        check = CancelCheck(ttl_s=3600)  # a long cache: the answer at the end must not come from it
        check.bind(ledger, asyncio.get_running_loop())
        assert not await check.cancelled(job)
        registry = S3AssetRegistry(store, settings.work_bucket)
        buckets = {"work_bucket": settings.work_bucket, "delivery_bucket": settings.delivery_bucket}
        delivery = Delivery(store=store, registry=registry, **buckets)
        webhooks = WebhookDeps(secret=None, urls=[])
        cancelled = lambda j: check(j, fresh=True)  # noqa: E731
        deps = UploaderDeps(store=store, delivery=delivery, webhooks=webhooks, cancelled=cancelled, **buckets)
        completed = await asyncio.to_thread(handle_film, film, deps)
        assert [type(e) for e in completed] == [JobCompleted]  # not cancelled: it completes

        await ledger.cancel(job, by="alice")  # the cancel lands while the (next) delivery runs
        again = await asyncio.to_thread(handle_film, film.model_copy(update={"version": 2}), deps)
        assert again == []  # no job.completed after job.cancelled
    finally:
        await bus.close()
