"""No presigned URL is kept: the uploader's events and media_assets rows name S3 objects by key (issue 15 point 2)."""

from __future__ import annotations

from reelforge_shared.assets import S3AssetRegistry
from reelforge_shared.events import FilmChecked, ModelInfo, QaGate, QaReport, SegmentChecked
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import ObjectStore
from reelforge_uploader.delivery import Delivery
from reelforge_uploader.handler import UploaderDeps, handle_checked, handle_film
from reelforge_uploader.webhooks import WebhookDeps

QA = QaReport(passed=True, gates={"technical": QaGate(score=1.0, threshold=0.5, passed=True)})
MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)


def test_delivered_events_and_asset_rows_carry_keys_not_presigned_urls(store: ObjectStore, settings: CommonSettings) -> None:
    job, work = "j-links", settings.work_bucket
    store.put_bytes(work, f"jobs/{job}/segments/001/segment.mp4", b"\0" * 2048)
    store.put_bytes(work, f"jobs/{job}/final.mp4", b"\0" * 4096)
    store.put_json(work, f"jobs/{job}/report.json", {"segments": [{"index": 1, "qa_passed": True}]})
    registry = S3AssetRegistry(store, work)
    buckets = {"work_bucket": work, "delivery_bucket": settings.delivery_bucket}
    deps = UploaderDeps(
        store=store,
        delivery=Delivery(store=store, registry=registry, **buckets),
        webhooks=WebhookDeps(secret=None, urls=[]),
        **buckets,
    )
    checked = SegmentChecked(
        job_id=job,
        index=1,
        segment_id="s1",
        video_key=f"jobs/{job}/segments/001/segment.mp4",
        duration_s=1.0,
        qa=QA,
        report_key=f"jobs/{job}/segments/001/qa.json",
        model=MODEL,
    )
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
    events = handle_checked(checked, deps) + handle_film(film, deps)
    for event in events:
        assert "X-Amz-" not in event.model_dump_json(), event  # nothing a reader of the bus could fetch for days
    [delivered, completed] = events
    assert delivered.url is None
    assert store.exists(delivered.delivery_bucket, delivered.delivery_key)
    assert completed.film_url is None
    assert completed.report_url is None
    assert store.exists(completed.delivery_bucket, completed.film_key)
    rows = registry.for_job(job)
    assert len(rows) == 3
    for row in rows:
        assert row.public_url is None
        assert row.storage_url.startswith(f"s3://{settings.delivery_bucket}/")
