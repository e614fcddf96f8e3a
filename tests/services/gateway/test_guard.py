"""Refuse before reading: the gateway, a real process, answers 401/413 without taking a hostile body into memory.

The gateway runs as its own ``reelforge worker gateway`` process (as in production), so its memory is
read from /proc: the peak resident size (VmHWM) after the attacks is compared with the one before.
Bodies are streamed from generators over a raw socket, and the client stops sending once the answer
has come: a gateway that reads the body before it refuses would take all of it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import ObjectStore
from support.gateway_process import GatewayProcess
from support.gateway_process import gateway_process as start_gateway

TOKEN = "tok-guard-secret"
MB = 1024 * 1024
UPLOAD_LIMIT = 1 * MB
BODY_LIMIT = 5_000_000  # the default REELFORGE_MAX_BODY_BYTES
ZEROS = memoryview(bytes(MB))  # the one buffer every streamed megabyte is sent from


@pytest.fixture
def gateway_process(
    request: pytest.FixtureRequest, overrides: dict[str, Any], s3_keys, store: ObjectStore, tmp_path: Path
) -> Iterator[GatewayProcess]:
    """The gateway as its own process, with REELFORGE_MAX_UPLOAD_BYTES = UPLOAD_LIMIT (or the test's ``indirect`` param)."""
    with start_gateway(
        overrides | s3_keys["gateway"],
        tmp_path / "gateway.log",
        api_tokens=f"guard:{TOKEN}",
        max_upload_bytes=getattr(request, "param", UPLOAD_LIMIT),
        default_text_to_video_model="reelforge/tiny-zeroscope",
        default_image_to_video_model="reelforge/tiny-svd",
        sync_timeout_s=0,
    ) as gateway:
        yield gateway


async def _megabytes(count: int) -> AsyncIterator[memoryview]:
    for _ in range(count):
        yield ZEROS


async def _send(
    port: int,
    path: str,
    headers: dict[str, str],
    chunks: AsyncIterator[bytes | memoryview],
    *,
    chunked: bool,
    hold_after: int | None = None,
) -> tuple[int, str, int]:
    """POST ``chunks`` to ``path``: (status, answer body, body bytes sent when the answer came).

    With ``hold_after``, the client stops sending once it has sent that many bytes and waits (up to 10 s) for the
    answer before it sends the rest: a gateway that answers without reading the body answers while it waits, one that
    reads the body first answers only after everything was sent. Without the hold the test would race the gateway,
    which after its answer reads and drops the rest of the body at loopback speed (uvicorn keeps the connection).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else "\r\n"
    writer.write(head.encode())
    sent = 0
    answered = asyncio.Event()

    async def body() -> None:
        nonlocal sent
        async for chunk in chunks:
            if hold_after is not None and sent >= hold_after and not answered.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), 10)
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
            await writer.drain()
            sent += len(chunk)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sending = asyncio.create_task(body())
    try:
        status_line = await reader.readline()
        sent_at_answer = sent
        answered.set()
        answer_head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(answer_head.split("content-length:")[1].split("\r\n")[0])
        answer = (await reader.readexactly(length)).decode()
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()
    return int(status_line.split()[1]), answer, sent_at_answer


def _png_head() -> bytes:
    """A real PNG's first bytes, up to its first IDAT chunk's type: what the gateway reads the type and size from."""
    png = _png()
    return png[: png.index(b"IDAT") + 4]


def _multipart_head(boundary: str) -> bytes:
    """A file part whose image header is sound (64x48 PNG): the image data after it (zeros) is what is too large."""
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
    ).encode() + _png_head()


async def _multipart(boundary: str, megabytes: int) -> AsyncIterator[bytes | memoryview]:
    yield _multipart_head(boundary)
    async for chunk in _megabytes(megabytes):
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


async def _warm_up(url: str) -> None:
    """Every code path the attacks reach, once, so that its imports and caches are in the baseline."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/v1/jobs")).status_code == 401
        assert (await client.get("/v1/jobs", headers=auth)).status_code == 200
        assert (await client.post("/api/video/text-to-video", json={"prompt": ""}, headers=auth)).status_code == 422
        corrupt = {"image": ("a.png", _png()[:60], "image/png")}
        assert (await client.post("/api/video/image-to-video", files=corrupt, headers=auth)).status_code == 422
        assert (await client.post("/v1/jobs", content=b"x" * (BODY_LIMIT + 1), headers=auth)).status_code == 413


async def test_hostile_bodies_are_refused_before_they_are_read_and_memory_stays_flat(gateway_process: GatewayProcess) -> None:
    gateway = gateway_process
    await _warm_up(gateway.url)
    before = gateway.peak_rss_mb()
    json_type = {"Content-Type": "application/json"}

    # Anonymous 50 MB JSON bodies, declared and streamed: 401 before the body is read.
    for chunked in (False, True):
        headers = json_type if chunked else json_type | {"Content-Length": str(50 * MB)}
        status, answer, sent = await _send(
            gateway.port, "/api/video/text-to-video", headers, _megabytes(50), chunked=chunked, hold_after=MB
        )
        assert status == 401, answer
        assert '"unauthorized"' in answer, answer
        assert sent <= MB, f"the client sent {sent} bytes before the answer"

    # Malformed JSON without a token: 401, not 422 (no byte of it is parsed).
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        malformed = await client.post("/v1/jobs", content=b"{not json", headers=json_type)
        assert malformed.status_code == 401
        assert malformed.json()["error"] == "unauthorized"
        wrong = await client.post("/api/video/image-to-video", content=b"--x\r\n", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert set(wrong.json()) == {"error", "message", "details", "timestamp"}

    # A 500 MB multipart upload with a valid token: 413 once the limit is passed, declared or streamed.
    boundary = "reelforge-guard"
    upload = {"Authorization": f"Bearer {TOKEN}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    declared = upload | {"Content-Length": str(500 * MB + 200)}
    status, answer, sent = await _send(
        gateway.port, "/api/video/image-to-video", declared, _multipart(boundary, 500), chunked=False, hold_after=MB
    )
    assert status == 413, answer
    assert '"too_large"' in answer, answer
    assert "REELFORGE_MAX_UPLOAD_BYTES" in answer, answer
    assert sent < 2 * MB, f"the client sent {sent} bytes before the answer"
    hold = UPLOAD_LIMIT + 2 * MB  # past the limit: the gateway must answer while the client waits there
    status, answer, sent = await _send(
        gateway.port, "/api/video/image-to-video", upload, _multipart(boundary, 500), chunked=True, hold_after=hold
    )
    assert status == 413, answer
    assert '"too_large"' in answer, answer
    assert sent < hold + MB, f"the client sent {sent} bytes before the answer"
    # A 50 MB storyboard with a valid token, streamed: 413 at REELFORGE_MAX_BODY_BYTES.
    auth = json_type | {"Authorization": f"Bearer {TOKEN}"}
    hold = BODY_LIMIT + MB
    status, answer, sent = await _send(gateway.port, "/v1/jobs", auth, _megabytes(50), chunked=True, hold_after=hold)
    assert status == 413, answer
    assert '"field": "body"' in answer.replace('":"', '": "'), answer
    assert sent < hold + MB, f"the client sent {sent} bytes before the answer"

    grown = gateway.peak_rss_mb() - before
    assert grown < 10, f"the gateway's peak memory grew by {grown:.0f} MB"
    assert (await asyncio.to_thread(httpx.get, f"{gateway.url}/healthz")).status_code == 200


STREAMED_LIMIT = 12 * MB  # above S3's 5 MiB least part: a multipart upload when cut; one part (5 MiB) held at a time


@pytest.mark.parametrize("gateway_process", [STREAMED_LIMIT], indirect=True)
async def test_a_500_mb_upload_is_streamed_to_storage_until_the_cap_and_nothing_is_left(
    gateway_process: GatewayProcess, store: ObjectStore, settings: CommonSettings
) -> None:
    gateway = gateway_process
    await _warm_up(gateway.url)
    before = gateway.peak_rss_mb()
    keys = store.list_keys(settings.work_bucket, "")
    boundary = "reelforge-stream"
    upload = {"Authorization": f"Bearer {TOKEN}", "Content-Type": f"multipart/form-data; boundary={boundary}"}

    # Streamed (chunked, no declared length): the gateway writes parts to S3 as they come, then passes the cap.
    hold = STREAMED_LIMIT + 2 * MB
    status, answer, sent = await _send(
        gateway.port, "/api/video/image-to-video", upload, _multipart(boundary, 500), chunked=True, hold_after=hold
    )
    assert status == 413, answer
    assert '"too_large"' in answer, answer
    assert "REELFORGE_MAX_UPLOAD_BYTES" in answer, answer
    assert sent < hold + MB, f"the client sent {sent} bytes before the answer"

    # A decompression bomb's header (10^10 pixels declared) before 500 MB: refused from the header, not at the cap.
    bomb = bytearray(_png_head())
    bomb[16:24] = struct.pack(">II", 100_000, 100_000)
    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])))

    async def bomb_body() -> AsyncIterator[bytes | memoryview]:
        yield _multipart_head(boundary)[: -len(bomb)] + bytes(bomb)
        async for chunk in _megabytes(500):
            yield chunk

    status, answer, sent = await _send(
        gateway.port, "/api/video/image-to-video", upload, bomb_body(), chunked=True, hold_after=MB
    )
    assert status == 422, answer
    assert '"invalid_image"' in answer, answer
    assert sent < STREAMED_LIMIT, f"the client sent {sent} bytes before the answer"

    # POST /v1/uploads streams alike (its file field is `file`): 413 at the cap, a bomb refused from its header.
    def as_file(chunk: bytes | memoryview) -> bytes | memoryview:
        return bytes(chunk).replace(b'name="image"', b'name="file"', 1) if b'name="image"' in bytes(chunk[:200]) else chunk

    async def to_uploads(body: AsyncIterator[bytes | memoryview]) -> AsyncIterator[bytes | memoryview]:
        async for chunk in body:
            yield as_file(chunk)

    status, answer, sent = await _send(
        gateway.port, "/v1/uploads", upload, to_uploads(_multipart(boundary, 500)), chunked=True, hold_after=hold
    )
    assert status == 413, answer
    assert sent < hold + MB, f"the client sent {sent} bytes before the answer"
    status, answer, sent = await _send(gateway.port, "/v1/uploads", upload, to_uploads(bomb_body()), chunked=True, hold_after=MB)
    assert status == 422, answer
    assert '"invalid_upload"' in answer, answer
    assert sent < STREAMED_LIMIT, f"the client sent {sent} bytes before the answer"

    grown = gateway.peak_rss_mb() - before
    assert grown < 8, f"the gateway peak memory grew by {grown:.1f} MB streaming a {STREAMED_LIMIT} B upload"
    assert store.list_keys(settings.work_bucket, "") == keys  # the partial object is gone
    assert store.unfinished_uploads(settings.work_bucket) == []  # and so is the multipart upload
