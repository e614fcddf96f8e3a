"""Delivery by the media guide's rules on real S3 and PostgreSQL, with a GitLab STAND-IN (tests/support/gitlab_standin.py)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_shared.assets import PostgresAssetRegistry
from reelforge_shared.bus import Bus
from reelforge_shared.errors import TransientError
from reelforge_shared.jobs import JobRecord, Ledger
from reelforge_uploader.delivery import Delivery, GitLabUploads, join_parts

KB = 1024


def _delivery(store, settings, registry, gitlab_standin) -> Delivery:
    gitlab = GitLabUploads(gitlab_standin.url, gitlab_standin.project, gitlab_standin.token)
    return Delivery(
        store=store,
        work_bucket=settings.work_bucket,
        delivery_bucket=settings.delivery_bucket,
        registry=registry,
        gitlab=gitlab,
        gitlab_threshold_bytes=64 * KB,
        split_bytes=80 * KB,
        head_timeout_s=5,
    )


def _put(store, settings, key: str, size: int) -> bytes:
    data = os.urandom(size)
    store.put_bytes(settings.work_bucket, key, data)
    return data


def test_routing_split_join_and_asset_rows(store, settings, postgres_url, gitlab_standin) -> None:
    registry = PostgresAssetRegistry(postgres_url)
    delivery = _delivery(store, settings, registry, gitlab_standin)
    job = f"j-{settings.subject_prefix}"
    small = _put(store, settings, "jobs/x/segments/001/segment.mp4", 10 * KB)
    medium = _put(store, settings, "jobs/x/segments/002/segment.mp4", 70 * KB)
    large = _put(store, settings, "jobs/x/final.mp4", 200 * KB)
    report = _put(store, settings, "jobs/x/report.json", 100 * KB)

    # Under the threshold: the S3 delivery bucket, named by its key; no presigned URL is made to be kept.
    s = delivery.deliver(job, "jobs/x/segments/001/segment.mp4", f"{job}/segments/001.mp4", {"segment": 1})
    assert (s.provider, s.parts) == ("s3", 1)
    assert s.url is None
    assert s.asset.storage_url == f"s3://{settings.delivery_bucket}/{job}/segments/001.mp4"
    assert store.get_bytes(settings.delivery_bucket, f"{job}/segments/001.mp4") == small
    # Over it: GitLab, one upload; over the split size: numbered parts plus a manifest, joined back bit for bit.
    m = delivery.deliver(job, "jobs/x/segments/002/segment.mp4", f"{job}/segments/002.mp4", {"segment": 2})
    assert (m.provider, m.parts) == ("gitlab", 1)
    assert m.url.startswith(gitlab_standin.url)
    assert httpx.get(m.url).content == medium
    f = delivery.deliver(job, "jobs/x/final.mp4", f"{job}/final.mp4")
    assert (f.provider, f.parts) == ("gitlab", 3)
    manifest = httpx.get(f.url).json()
    assert [p["size"] for p in manifest["parts"]] == [80 * KB, 80 * KB, 40 * KB]
    assert join_parts(manifest, lambda url: httpx.get(url).content) == large
    # Not a video: S3 whatever its size.
    assert delivery.deliver(job, "jobs/x/report.json", f"{job}/report.json").provider == "s3"
    assert registry.get(job, f"{job}/report.json").public_url is None
    assert store.get_bytes(settings.delivery_bucket, f"{job}/report.json") == report

    rows = {a.name: a for a in registry.for_job(job)}
    assert sorted(rows) == sorted(
        [
            f"{job}/segments/001.mp4",
            f"{job}/segments/002.mp4",
            f"{job}/report.json",
            f"{job}/final.mp4.manifest.json",
            *(f"{job}/final.mp4.part{i:03d}" for i in (1, 2, 3)),
        ]
    )
    assert {(a.type, a.storage_provider) for a in rows.values()} == {
        ("video", "s3"),
        ("video", "gitlab"),
        ("report", "s3"),
        ("manifest", "gitlab"),
        ("video_part", "gitlab"),
    }
    assert rows[f"{job}/segments/002.mp4"].file_size == 70 * KB
    assert rows[f"{job}/segments/002.mp4"].metadata["segment"] == 2
    assert rows[f"{job}/final.mp4.manifest.json"].metadata["size"] == 200 * KB

    # A redelivered event uploads nothing again: the row is found and its URL still answers.
    uploads = len(gitlab_standin.uploads)
    assert delivery.deliver(job, "jobs/x/final.mp4", f"{job}/final.mp4").url == f.url
    assert len(gitlab_standin.uploads) == uploads
    assert len(registry.for_job(job)) == len(rows)

    # A re-rendered segment (another source under the same name) is delivered again, not taken for the old one.
    _put(store, settings, "jobs/x/segments/002/attempt-2/segment.mp4", 75 * KB)
    again = delivery.deliver(job, "jobs/x/segments/002/attempt-2/segment.mp4", f"{job}/segments/002.mp4", {"segment": 2})
    assert again.url != m.url
    assert len(gitlab_standin.uploads) == uploads + 1
    assert registry.get(job, f"{job}/segments/002.mp4").file_size == 75 * KB


def test_a_url_that_fails_its_head_request_is_not_delivered(store, settings, postgres_url, gitlab_standin) -> None:
    registry = PostgresAssetRegistry(postgres_url)
    delivery = _delivery(store, settings, registry, gitlab_standin)
    job = f"j-{settings.subject_prefix}-head"
    _put(store, settings, "jobs/y/final.mp4", 70 * KB)
    gitlab_standin.head_status = 404
    with pytest.raises(TransientError, match="answered 404"):
        delivery.deliver(job, "jobs/y/final.mp4", f"{job}/final.mp4")
    assert registry.for_job(job) == []
    gitlab_standin.head_status = None  # the retry succeeds and records the row
    assert delivery.deliver(job, "jobs/y/final.mp4", f"{job}/final.mp4").provider == "gitlab"
    assert [a.name for a in registry.for_job(job)] == [f"{job}/final.mp4"]


def test_a_split_upload_retried_after_a_partial_failure_uploads_only_the_missing_parts(
    store, settings, postgres_url, gitlab_standin
) -> None:
    registry = PostgresAssetRegistry(postgres_url)
    delivery = _delivery(store, settings, registry, gitlab_standin)
    job = f"j-{settings.subject_prefix}-partial"
    data = _put(store, settings, "jobs/p/final.mp4", 200 * KB)
    part = [f"{job}_final.mp4.part{i:03d}" for i in (1, 2, 3)]
    gitlab_standin.refuse[part[2]] = 503  # parts 1 and 2 land, part 3 fails
    with pytest.raises(TransientError, match="503"):
        delivery.deliver(job, "jobs/p/final.mp4", f"{job}/final.mp4")
    assert gitlab_standin.uploads == part[:2]
    del gitlab_standin.refuse[part[2]]
    # Part 2 is gone from GitLab since (its HEAD answers 404): checked, it is uploaded again; part 1 is not.
    gone = next(path for path, (name, _) in gitlab_standin.files.items() if name == part[1])
    del gitlab_standin.files[gone]

    delivered = delivery.deliver(job, "jobs/p/final.mp4", f"{job}/final.mp4")
    assert gitlab_standin.uploads == [*part[:2], part[1], part[2], f"{job}_final.mp4.manifest.json"]
    assert delivered.parts == 3
    assert join_parts(httpx.get(delivered.url).json(), lambda url: httpx.get(url).content) == data


async def test_gateway_serves_a_jobs_asset_rows_from_postgres(
    overrides, store, settings, postgres_url, gitlab_standin, tmp_path: Path
) -> None:
    registry = PostgresAssetRegistry(postgres_url)
    job = f"j-{settings.subject_prefix}-api"
    _put(store, settings, "jobs/z/final.mp4", 70 * KB)
    _delivery(store, settings, registry, gitlab_standin).deliver(job, "jobs/z/final.mp4", f"{job}/final.mp4")
    async with local_stack(tmp_path, names=["gateway"], assets_database_url=postgres_url, **overrides) as stack:
        bus = await Bus.connect(stack.settings)
        try:  # the job exists in the job store (the gateway answers 404 for a job nobody owns)
            await (await Ledger.open(bus)).create(JobRecord(job_id=job))
        finally:
            await bus.close()
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            body = (await client.get("/v1/assets", params={"job": job})).json()
            rows = [(a["name"], a["storage_provider"], a["file_size"]) for a in body["assets"]]
            assert rows == [(f"{job}/final.mp4", "gitlab", 70 * KB)]
            missing = await client.get("/v1/assets", params={"job": "j-none"})
            assert missing.status_code == 404, missing.text
            bad = await client.get("/v1/assets", params={"job": "../etc"})
            assert bad.status_code == 422
            assert "job" in bad.text
