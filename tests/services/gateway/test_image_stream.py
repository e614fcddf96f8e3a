"""POST /api/video/image-to-video streams its image part to S3: the header is checked first (type, pixel count), the
whole image is decoded before anything is published, and a refused upload leaves nothing in the bucket."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import httpx

from reelforge.stack import local_stack
from reelforge_shared.bus import Bus
from reelforge_shared.storage import Keys, ObjectStore

SETTINGS = {
    "api_tokens": "alice:tok-alice-secret",
    "sync_timeout_s": 0,
    "default_image_to_video_model": "reelforge/tiny-svd",
}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
FORM = {"prompt": "it moves", "duration": "1", "fps": "3", "width": "64", "height": "64", "seed": "5"}


def _png(width: int = 64, height: int = 48, noise: bool = False) -> bytes:
    from PIL import Image

    pixels = os.urandom(width * height * 3) if noise else bytes(width * height * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    png = bytearray(_png(8, 8))
    ihdr = struct.pack(">II", width, height) + png[24:29]
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(png)


async def _published(settings) -> int:
    bus = await Bus.connect(settings)
    try:
        return (await bus.js.stream_info(bus.stream)).state.messages
    finally:
        await bus.close()


async def test_a_valid_image_is_streamed_to_storage_stored_whole_and_its_job_published(overrides, tmp_path: Path) -> None:
    async with local_stack(tmp_path, names=["gateway"], **overrides, **SETTINGS) as stack:
        store = ObjectStore.from_settings(stack.settings)
        bucket = stack.settings.work_bucket
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            # A small image (one PUT) and one of ~6.8 MB (more than S3's least part: a multipart upload).
            for image in (_png(), _png(1500, 1500, noise=True)):
                accepted = await client.post(
                    "/api/video/image-to-video", files={"image": ("a.png", image, "image/png")}, data=FORM
                )
                assert accepted.status_code == 202, accepted.text
                job_id = accepted.json()["job_id"]
                assert store.get_bytes(bucket, Keys.input_image(job_id)) == image
                board = store.get_json(bucket, Keys.storyboard(job_id))
                assert board["characters"]["subject"]["reference_image"] == Keys.input_image(job_id)
            assert await _published(stack.settings) >= 2
            # Only the jobs' objects are left: the staged upload was moved under the job.
            assert all(key.startswith("jobs/") for key in store.list_keys(bucket, "")), store.list_keys(bucket, "")
            assert store.unfinished_uploads(bucket) == []


async def test_a_bomb_a_corrupt_image_and_a_non_image_are_refused_before_anything_is_published(overrides, tmp_path: Path) -> None:
    big = _png(1500, 1500, noise=True)
    refused = {
        "bomb": _bomb(100_000, 100_000),  # 10^10 pixels declared, 70 bytes sent
        "over the pixel cap": _bomb(5000, 5000),  # within PIL's own guard, over REELFORGE_MAX_IMAGE_PIXELS
        "truncated": _png(64, 48)[:60],
        "corrupt after a sound header (multipart upload)": big[:100_000] + bytes(6_000_000) + big[-1000:],
        "gif": b"GIF89a" + bytes(100),
        "text": b"hello, not an image",
    }
    async with local_stack(tmp_path, names=["gateway"], **overrides, **SETTINGS) as stack:
        store = ObjectStore.from_settings(stack.settings)
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            for name, image in refused.items():
                answer = await client.post("/api/video/image-to-video", files={"image": ("a.png", image, "image/png")}, data=FORM)
                assert answer.status_code == 422, (name, answer.text)
                assert answer.json()["error"] == "invalid_image", (name, answer.text)
                assert answer.json()["details"]["fields"][0]["field"] == "image", (name, answer.text)
            pixels = await client.post("/api/video/image-to-video", files={"image": ("a.png", _bomb(5000, 5000))}, data=FORM)
            assert "5000x5000" in pixels.json()["message"]
            missing = await client.post("/api/video/image-to-video", data=FORM)
            assert missing.status_code == 422
            assert missing.json()["details"]["fields"][0]["field"] == "image"
            bad_fps = await client.post("/api/video/image-to-video", files={"image": ("a.png", _png())}, data=FORM | {"fps": "0"})
            assert bad_fps.status_code == 422
            assert bad_fps.json()["details"]["fields"][0]["field"] == "fps"
        assert await _published(stack.settings) == 0
        assert store.list_keys(stack.settings.work_bucket, "") == []
        assert store.unfinished_uploads(stack.settings.work_bucket) == []


def test_what_a_stopped_upload_left_under_incoming_is_swept_once_old(store: ObjectStore, settings) -> None:
    from datetime import timedelta

    from reelforge_gateway.form_stream import sweep_incoming
    from reelforge_shared.storage import PART_BYTES, StreamedPut

    bucket = settings.work_bucket
    store.put_bytes(bucket, Keys.incoming("left"), b"half an image")
    begun = StreamedPut(store, bucket, Keys.incoming("begun"))
    begun.part(bytes(PART_BYTES))  # a multipart upload begun and never finished (the gateway was killed)
    store.put_bytes(bucket, "jobs/j-1/input/image.png", b"a job's own")
    assert store.unfinished_uploads(bucket) == [Keys.incoming("begun")]

    assert sweep_incoming(store, bucket) == 0  # younger than an hour: perhaps still streaming in
    assert sweep_incoming(store, bucket, older_than=timedelta(0)) == 2
    assert store.list_keys(bucket, "") == ["jobs/j-1/input/image.png"]
    assert store.unfinished_uploads(bucket) == []
