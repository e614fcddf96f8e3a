"""Derived renditions in the job store, on real servers (gateway and encoder): each is recorded per film version (id,
kind, parameters, status, object, size, when), listed from the record, deleted by its owner only, and deleted with the
job when REELFORGE_JOB_RETENTION sweeps it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.stack import local_stack
from reelforge_encoder.ffmpeg import ffmpeg_exe
from reelforge_shared.bus import Bus
from reelforge_shared.events import RenditionEncoded
from reelforge_shared.jobs import JobRecord, Ledger
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore

pytestmark = pytest.mark.slow  # starts the gateway and the encoder

TOKENS = {"api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret"}
ALICE, BOB = {"Authorization": "Bearer tok-alice-secret"}, {"Authorization": "Bearer tok-bob-secret"}
BOARD = {
    "output": {"width": 64, "height": 36},
    "segments": [{"id": "a", "prompt": "walks", "frames": 6, "fps": 6}, {"id": "b", "prompt": "sits", "frames": 6, "fps": 6}],
}
LOOP = {"kind": "loop", "times": 2}


async def _finished_film(stack: Any, job: str, tmp: Path, status: str) -> ObjectStore:
    """Job ``job`` of alice's with a film version 1 stored (2 s, with sound), as the encoder and the ledger leave it."""
    film = tmp / f"{job}.mp4"
    lavfi = ["-f", "lavfi", "-i", "testsrc=size=64x36:rate=6:duration=2", "-f", "lavfi", "-i", "sine=duration=2"]
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", *lavfi, "-shortest", "-pix_fmt", "yuv420p", str(film)], check=True)
    store, bucket = ObjectStore.from_settings(stack.settings), stack.settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), BOARD)
    store.put_file(bucket, Keys.film(job, 1), film, "video/mp4")
    store.put_json(bucket, Keys.film_meta(job, 1), {"duration_s": 2.0, "frame_count": 12, "fps": 6, "has_audio": True})

    def made(record: JobRecord) -> None:
        record.owner, record.status, record.segment_count = "alice", status, 2
        record.film_version, record.films = 1, {1: f"{job}/final.mp4"}
        record.record("test.film")

    await _update(stack.settings, job, made)
    return store


async def _update(settings: CommonSettings, job: str, change: Any) -> None:
    bus = await Bus.connect(settings)
    try:
        await (await Ledger.open(bus)).update(job, change, create=True)
    finally:
        await bus.close()


async def _ready(client: httpx.AsyncClient, job: str, rid: str) -> dict:
    """The rendition as the job's own record lists it, once the encoder made it."""
    for _ in range(600):
        listed = (await client.get(f"/v1/jobs/{job}")).json()["renditions"]
        if (mine := listed.get("1", {}).get(rid)) and mine["status"] != "pending":
            return mine
        await asyncio.sleep(0.1)
    raise AssertionError(f"rendition {rid} of {job} never made: {listed}")


async def test_a_rendition_is_recorded_listed_from_the_record_and_deleted_by_its_owner_only(
    overrides: dict, tmp_path: Path
) -> None:
    job = "j-renditions"
    async with local_stack(tmp_path, names=["gateway", "encoder"], **overrides, **TOKENS) as stack:
        store, bucket = await _finished_film(stack, job, tmp_path, "completed"), stack.settings.work_bucket
        base = f"/v1/jobs/{job}/films/1/renditions"
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            asked = await client.post(base, json=LOOP)
            assert asked.status_code == 202, asked.text
            rid = asked.json()["id"]
            recorded = await _ready(client, job, rid)
            key = Keys.derived(job, 1, rid, ".mp4")
            assert {k: recorded[k] for k in ("id", "kind", "params", "status", "key")} == {
                "id": rid,
                "kind": "loop",
                "params": {"times": 2},
                "status": "ready",
                "key": key,
            }
            assert recorded["size_bytes"] == len(store.get_bytes(bucket, key))
            assert recorded["created_at"]
            # The listing is the record's: what the job store holds, with a short-lived URL for what is ready.
            [listed] = (await client.get(base)).json()
            assert (listed["id"], listed["status"], listed["size_bytes"]) == (rid, "ready", recorded["size_bytes"])
            assert listed["url"]

            # Another owner cannot tell it exists; an unknown rendition is a 404; the owner deletes it, object and record.
            refused = await client.delete(f"{base}/{rid}", headers=BOB)
            assert (refused.status_code, refused.json()["error"]) == (404, "job_not_found")
            assert store.exists(bucket, key)
            assert (await client.delete(f"{base}/{'0' * 16}")).status_code == 404
            assert (await client.delete(f"{base}/{rid}")).status_code == 204
            for gone in (key, Keys.derived_meta(job, 1, rid)):
                assert not store.exists(bucket, gone), gone
            assert (await client.get(f"/v1/jobs/{job}")).json()["renditions"] == {}
            assert (await client.get(base)).json() == []
            assert (await client.get(f"{base}/{rid}")).status_code == 404
            assert (await client.delete(f"{base}/{rid}")).status_code == 404  # deleted once

            # Asked again after the delete: a new request (not a repeat the bus drops), made again.
            again = await client.post(base, json=LOOP)
            assert (again.status_code, again.json()["id"]) == (202, rid)
            assert (await _ready(client, job, rid))["status"] == "ready"
            assert store.exists(bucket, key)


async def test_the_retention_sweep_deletes_a_jobs_renditions_with_it(overrides: dict, tmp_path: Path) -> None:
    job = "j-renditions-expire"
    settings = overrides | TOKENS | {"job_retention": 1, "lag_poll_s": 0.2}
    async with local_stack(tmp_path, names=["gateway", "encoder"], **settings) as stack:
        store, bucket = await _finished_film(stack, job, tmp_path, "delivering"), stack.settings.work_bucket
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            rid = (await client.post(f"/v1/jobs/{job}/films/1/renditions", json=LOOP)).json()["id"]
            key = (await _ready(client, job, rid))["key"]
            assert store.exists(bucket, key)

            def finished(record: JobRecord) -> None:
                record.status = "completed"
                record.record("test.completed")

            await _update(stack.settings, job, finished)  # retention counts from here: 1 s
            for _ in range(300):
                if (await client.get(f"/v1/jobs/{job}")).status_code == 404:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get(f"/v1/jobs/{job}")).status_code == 404
            assert store.list_keys(bucket, f"{Keys.film_dir(job, 1)}/derived/") == []
            assert store.exists(bucket, Keys.film(job, 1))  # the job's other objects are the bucket's lifecycle rule's


async def test_a_rendition_made_after_it_was_deleted_leaves_no_file(overrides: dict, tmp_path: Path) -> None:
    job = "j-renditions-late"
    async with local_stack(tmp_path, names=["gateway"], **overrides, **TOKENS) as stack:  # no encoder: it stays pending
        store, bucket = await _finished_film(stack, job, tmp_path, "completed"), stack.settings.work_bucket
        base = f"/v1/jobs/{job}/films/1/renditions"
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            asked = (await client.post(base, json=LOOP)).json()
            assert asked["status"] == "pending"
            assert (await client.delete(f"{base}/{asked['id']}")).status_code == 204
            # The encoder was making it meanwhile: it stores the file and says so after the delete.
            key = Keys.derived(job, 1, asked["id"], ".mp4")
            store.put_bytes(bucket, key, b"late", "video/mp4")
            store.put_json(bucket, Keys.derived_meta(job, 1, asked["id"]), {"key": key, "size_bytes": 4})
            bus = await Bus.connect(stack.settings)
            try:
                made = RenditionEncoded(job_id=job, version=1, rendition_id=asked["id"], request=1, key=key, size_bytes=4)
                await bus.publish(made)
            finally:
                await bus.close()
            for _ in range(300):
                if not store.list_keys(bucket, f"{Keys.film_dir(job, 1)}/derived/"):
                    break
                await asyncio.sleep(0.1)
            assert store.list_keys(bucket, f"{Keys.film_dir(job, 1)}/derived/") == []
            assert (await client.get(f"/v1/jobs/{job}")).json()["renditions"] == {}
