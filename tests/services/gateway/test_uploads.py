"""POST /v1/uploads: a checked, owned medium a storyboard may name; at submission it is copied under the job."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from PIL import Image

from reelforge.stack import local_stack
from reelforge_shared.bus import Bus
from reelforge_shared.storage import Keys, ObjectStore
from support.media import tone

SETTINGS = {"api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret"}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
BOB = {"Authorization": "Bearer tok-bob-secret"}
FIELD = "characters.hero.reference_image"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 130, 30)).save(out, format="PNG")
    return out.getvalue()


def _board(reference: str) -> dict:
    hero = {"description": "a man in a blue shirt", "seed": 1, "reference_image": reference}
    return {"characters": {"hero": hero}, "segments": [{"id": "a", "prompt": "walks", "characters": ["hero"]}]}


async def _published(settings) -> int:
    bus = await Bus.connect(settings)
    info = await bus.js.stream_info(bus.stream)
    await bus.close()
    return info.state.messages


async def test_an_upload_is_checked_owned_and_copied_under_the_job_that_names_it(overrides, tmp_path: Path) -> None:
    async with local_stack(tmp_path, names=["gateway"], **overrides, **SETTINGS) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            png = {"file": ("hero.png", _png(), "image/png")}
            assert (await client.post("/v1/uploads", files=png)).status_code == 401
            corrupt = await client.post("/v1/uploads", files={"file": ("x.png", _png()[:50], "image/png")}, headers=ALICE)
            assert corrupt.status_code == 422
            assert corrupt.json()["error"] == "invalid_upload"
            uploaded = await client.post("/v1/uploads", files=png, headers=ALICE)
            assert uploaded.status_code == 201, uploaded.text
            key = uploaded.json()["key"]
            assert key.startswith("uploads/alice/")
            assert uploaded.json()["content_type"] == "image/png"

            # Another owner's upload, a missing one, a local path and plain http: 422 naming the field, one message each.
            refusals = [
                (BOB, key),
                (ALICE, "uploads/alice/0000.png"),
                (ALICE, "uploads/alice/../bob/x.png"),
                (ALICE, "/etc/hostname"),
                (ALICE, "http://example.com/hero.png"),
                (ALICE, "jobs/j-other/input/image.png"),
            ]
            for headers, reference in refusals:
                refused = await client.post("/v1/jobs", json=_board(reference), headers=headers)
                assert refused.status_code == 422, (reference, refused.text)
                assert refused.json()["details"]["fields"][0]["field"] == FIELD, refused.text
            foreign = await client.post("/v1/jobs", json=_board(key), headers=BOB)
            missing = await client.post("/v1/jobs", json=_board(key.replace("alice", "bob")), headers=BOB)
            assert foreign.json()["message"].replace(key, "K") == missing.json()["message"].replace(
                key.replace("alice", "bob"), "K"
            )
            assert await _published(stack.settings) == 0

            accepted = await client.post("/v1/jobs", json=_board(key), headers=ALICE)
            assert accepted.status_code == 202, accepted.text
            job_id = accepted.json()["job_id"]
            store = ObjectStore.from_settings(stack.settings)
            board = store.get_json(stack.settings.work_bucket, Keys.storyboard(job_id))
            stored = board["characters"]["hero"]["reference_image"]
            assert Keys.owned(job_id, stored)
            assert store.get_bytes(stack.settings.work_bucket, stored) == _png()


async def test_an_upload_streams_to_storage_checked_whole_and_a_refused_one_leaves_nothing(overrides, tmp_path: Path) -> None:
    import struct
    import zlib

    wav = tone(tmp_path / "a.wav", 440, 0.5).read_bytes()
    bomb = bytearray(_png())
    bomb[16:24] = struct.pack(">II", 100_000, 100_000)  # 10^10 pixels declared
    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])))
    async with local_stack(tmp_path / "stack", names=["gateway"], **overrides, **SETTINGS) as stack:
        store = ObjectStore.from_settings(stack.settings)
        bucket = stack.settings.work_bucket
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=ALICE) as client:
            sound = await client.post("/v1/uploads", files={"file": ("a.wav", wav, "audio/wav")})
            assert sound.status_code == 201, sound.text
            assert sound.json()["content_type"] == "audio/wav"
            assert store.get_bytes(bucket, sound.json()["key"]) == wav
            refusals = {
                "bomb": ("x.png", bytes(bomb), "image/png"),
                "not audio": ("x.wav", b"RIFF" + bytes(5000), "audio/wav"),
                "not an image": ("x.png", b"hello", "image/png"),
            }
            for name, file in refusals.items():
                refused = await client.post("/v1/uploads", files={"file": file})
                assert refused.status_code == 422, (name, refused.text)
                assert refused.json()["error"] == "invalid_upload", (name, refused.text)
                assert refused.json()["details"]["fields"][0]["field"] == "file", (name, refused.text)
            missing = await client.post("/v1/uploads", files={"other": ("a.png", _png(), "image/png")})
            assert missing.status_code == 422
            assert missing.json()["details"]["fields"][0]["field"] == "file"
        assert store.list_keys(bucket, "") == [sound.json()["key"]]  # nothing staged or refused is left
        assert store.unfinished_uploads(bucket) == []
