"""Reference fetching for the gateway: only checked media through the egress guard, against real local HTTP servers."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import os
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from reelforge_shared.egress import Egress, EgressPolicy
from reelforge_shared.errors import InvalidInput
from reelforge_shared.references import ReferenceLimits, check_image, fetch_reference, reference_egress, store_media
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from support.egress_servers import PUBLIC, Server, public_and_internal, stop, tls_for

LIMITS = ReferenceLimits(max_bytes=200_000, max_pixels=1_000_000, max_seconds=5)


def png(size: tuple[int, int] = (32, 24), mode: str = "RGB", noise: bool = False) -> bytes:
    out = io.BytesIO()
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)) if noise else Image.new(mode, size)
    image.save(out, format="PNG")
    return out.getvalue()


def wav(seconds: float = 0.1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return out.getvalue()


def serving(body: bytes, content_type: str) -> object:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    return answer


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    public, internal = await public_and_internal()
    yield public, internal
    await stop(public, internal)


def public_egress() -> Egress:
    """The references policy, with 127.0.0.2 standing for a public host and http for https (no certificate here)."""
    policy = EgressPolicy(
        allow_networks=(ipaddress.ip_network(f"{PUBLIC}/32"),),
        deadline_s=5,
        max_bytes=LIMITS.max_bytes,
        max_redirects=3,
    )
    return Egress(policy=policy, resolver=lambda host, port: [PUBLIC])


async def test_an_image_reference_is_fetched_and_checked(servers: tuple[Server, Server]) -> None:
    public, _ = servers
    public.answer = serving(png(), "image/png")  # type: ignore[assignment]
    got = await fetch_reference(public_egress(), public.url("/a.png", name="cdn.example"), kind="image", field="f", limits=LIMITS)
    assert got.content_type == "image/png"
    assert got.data == png()
    public.answer = serving(wav(), "audio/x-wav")  # type: ignore[assignment]
    got = await fetch_reference(public_egress(), public.url("/a.wav"), kind="audio", field="f", limits=LIMITS)
    assert got.content_type == "audio/wav"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}/a.png",  # loopback
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[64:ff9b::a9fe:a9fe]/latest",  # its NAT64 form
        "http://cdn.example/a.png",  # not https
        "file:///etc/passwd",
    ],
)
async def test_internal_and_non_https_references_are_refused_naming_the_field(url: str, servers: tuple[Server, Server]) -> None:
    _, internal = servers
    egress = reference_egress(allow_private=False, deadline_s=5, limits=LIMITS)
    with pytest.raises(InvalidInput, match=r"segments\[0\].reference_image"):
        await fetch_reference(
            egress, url.format(port=internal.port), kind="image", field="segments[0].reference_image", limits=LIMITS
        )
    assert internal.requests == []


async def test_a_reference_that_does_not_resolve_or_answer_in_time_is_invalid_input(servers: tuple[Server, Server]) -> None:
    def no_such_name(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    egress = Egress(policy=EgressPolicy(max_bytes=LIMITS.max_bytes), resolver=no_such_name)
    with pytest.raises(InvalidInput, match=r"^logo: .*does not resolve"):
        await fetch_reference(egress, "https://nowhere.example/a.png", kind="image", field="logo", limits=LIMITS)


async def test_a_reference_redirecting_to_loopback_is_refused(servers: tuple[Server, Server]) -> None:
    public, internal = servers

    async def to_loopback(writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 302 Found\r\nLocation: {internal.url('/secret.png')}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()

    public.answer = to_loopback
    with pytest.raises(InvalidInput, match="loopback"):
        await fetch_reference(public_egress(), public.url("/a.png"), kind="image", field="logo", limits=LIMITS)
    assert internal.requests == []


async def test_a_reference_of_the_wrong_type_or_not_decoding_is_refused(servers: tuple[Server, Server]) -> None:
    public, _ = servers
    for body, content_type, kind, message in [
        (png(), "text/html", "image", "text/html, not image"),
        (b"<html>", "image/png", "image", "not a PNG, JPEG or WebP"),
        (png(noise=True)[:1000], "image/png", "image", "not a PNG, JPEG or WebP"),  # truncated
        (png(), "audio/wav", "audio", "not audio|without audio"),
    ]:
        public.answer = serving(body, content_type)  # type: ignore[assignment]
        with pytest.raises(InvalidInput, match=message):
            await fetch_reference(public_egress(), public.url("/x"), kind=kind, field="music", limits=LIMITS)  # type: ignore[arg-type]


async def test_references_over_the_byte_pixel_or_duration_caps_are_refused(servers: tuple[Server, Server]) -> None:
    public, _ = servers
    for body, content_type, kind, message in [
        (png((1200, 1000)), "image/png", "image", "1200x1000 image, over the 1000000-pixel cap"),
        (wav(6), "audio/wav", "audio", "over the 5"),
        (b"\0" * 300_000, "image/png", "image", "200000-byte cap"),
    ]:
        public.answer = serving(body, content_type)  # type: ignore[assignment]
        with pytest.raises(InvalidInput, match=message):
            await fetch_reference(public_egress(), public.url("/x"), kind=kind, field="music", limits=LIMITS)  # type: ignore[arg-type]


def test_a_decompression_bomb_is_invalid_input() -> None:
    bomb = png((12_000, 12_000), mode="1")  # 144 Mpixel in a few kB: over PIL's own 89 Mpixel guard
    assert len(bomb) < 50_000
    with pytest.raises(InvalidInput, match="decompression bomb"):
        check_image(bomb, "reference_image", max_pixels=10**12)  # our cap out of the way: PIL's guard is an error too
    with pytest.raises(InvalidInput, match="144000000"):
        check_image(bomb, "reference_image", max_pixels=1_000_000)


async def test_submission_stores_https_media_under_the_job_and_refuses_the_rest(
    tmp_path: Path, store: ObjectStore, settings: CommonSettings
) -> None:
    tls, trust = tls_for("cdn.example", tmp_path)
    public = await Server(PUBLIC, tls=tls, answer=serving(png(), "image/png")).start()  # type: ignore[arg-type]
    policy = EgressPolicy(allow_networks=(ipaddress.ip_network(f"{PUBLIC}/32"),), schemes=frozenset({"https"}), max_redirects=3)
    egress = Egress(policy=policy, resolver=lambda host, port: [PUBLIC], verify=trust)
    job, bucket = "j-sub", settings.work_bucket
    own = Keys.job_input(job, "music.wav")
    board = parse_storyboard(
        {
            "segments": [{"id": "a", "prompt": "x", "characters": ["hero"]}],
            "characters": {
                "hero": {"description": "a hero", "seed": 1, "reference_image": public.url("/hero.png", name="cdn.example")}
            },
            "audio": {"music": own},
        }
    )
    try:
        stored = await store_media(board, job_id=job, egress=egress, store=store, bucket=bucket, limits=LIMITS)
        key = Keys.job_input(job, "characters-hero-reference-image.png")
        assert stored.characters["hero"].reference_image == key
        assert store.get_bytes(bucket, key) == png()
        assert stored.audio.music == own  # the job's own key, kept
        for ref in ("/etc/hostname", "http://cdn.example/a.png", Keys.job_input("j-other", "x.png"), "logo.png"):
            with pytest.raises(InvalidInput, match=r"^audio.music: .*neither an upload of this job nor an https URL"):
                await store_media(
                    board.model_copy(update={"audio": board.audio.model_copy(update={"music": ref})}),
                    job_id=job,
                    egress=egress,
                    store=store,
                    bucket=bucket,
                    limits=LIMITS,
                )
    finally:
        await egress.aclose()
        assert public.server is not None
        public.server.close()
