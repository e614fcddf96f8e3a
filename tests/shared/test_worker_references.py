"""Workers open nothing a storyboard names: media references are objects under the job's own folder, nothing else.

Each reference field (the encoder's ``deliverables.logo``, ``audio.music``, ``segments[].audio``; the
generator's reference images) is given another job's key, a local path (existing and missing), a
loopback URL, a link-local URL and a traversal out of the job's folder: every one is refused with the
same message as a missing key, and nothing is fetched. A decompression bomb is invalid input.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, ffmpeg_exe
from reelforge_encoder.handler import EncoderDeps, _resolver, handle_segment
from reelforge_generator.handler import stored_references
from reelforge_generator.references import load_references
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import ModelInfo, RenderSpec, SegmentGenerated
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from support.egress_servers import INTERNAL, Server

JOB, OTHER = "j-mine", "j-other"


def _png(size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def loopback() -> AsyncIterator[Server]:
    server = await Server(INTERNAL).start()
    yield server
    assert server.server is not None
    server.server.close()


def attacks(store: ObjectStore, bucket: str, tmp_path: Path, loopback: Server) -> list[str]:
    store.put_bytes(bucket, Keys.job_input(OTHER, "secret.png"), _png())  # exists: another job's upload
    local = tmp_path / "here.png"
    local.write_bytes(_png())
    return [
        Keys.job_input(OTHER, "secret.png"),
        f"{Keys.job(JOB)}/input/../../{OTHER}/input/secret.png",
        f"{Keys.job(JOB)}//input/x.png",
        str(local),
        "/etc/hostname",
        "/nonexistent/x.png",
        loopback.url("/x.png"),
        "http://169.254.169.254/latest/meta-data",
        Keys.job_input(JOB, "missing.png"),  # the job's own, missing: the same answer as every refusal
    ]


def _same_answer(errors: dict[str, str]) -> None:
    """One message for missing and forbidden: with the reference blanked out, every error reads the same."""
    assert len({message.replace(repr(ref), "REF") for ref, message in errors.items()}) == 1, errors


@pytest.mark.parametrize("field", ["deliverables.logo", "audio.music", "segments[0].audio"])
def test_the_encoder_resolves_only_the_jobs_own_objects(
    field: str, store: ObjectStore, settings: CommonSettings, tmp_path: Path, loopback: Server
) -> None:
    deps = EncoderDeps(store=store, bucket=settings.work_bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"))
    resolve = _resolver(deps, JOB, tmp_path)
    errors = {}
    for ref in attacks(store, settings.work_bucket, tmp_path, loopback):
        with pytest.raises(InvalidInput, match="^" + re.escape(field) + ": ") as caught:
            resolve(field, ref)
        errors[ref] = str(caught.value)
    _same_answer(errors)
    assert loopback.requests == []
    own = Keys.job_input(JOB, "logo.png")
    store.put_bytes(settings.work_bucket, own, _png())
    assert resolve(field, own).read_bytes() == _png()


def test_a_segment_whose_audio_is_another_jobs_upload_fails_at_once(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    bucket = settings.work_bucket
    store.put_bytes(bucket, Keys.job_input(OTHER, "voice.wav"), b"RIFF")
    board = {"segments": [{"id": "a", "prompt": "x", "frames": 2, "fps": 2, "audio": Keys.job_input(OTHER, "voice.wav")}]}
    store.put_json(bucket, Keys.storyboard(JOB), board)
    for i in range(2):
        store.put_bytes(bucket, Keys.frame(JOB, 1, i), _png((64, 36)), "image/png")
    event = SegmentGenerated(
        job_id=JOB,
        index=1,
        segment_id="a",
        frames_prefix=Keys.frames(JOB, 1),
        frame_count=2,
        fps=2,
        width=64,
        height=36,
        model=ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True),
    )
    deps = EncoderDeps(store=store, bucket=bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"))
    with pytest.raises(InvalidInput, match=r"segments\[0\]\.audio: .*not one of this job's stored objects"):
        handle_segment(event, deps)


def test_a_decompression_bomb_logo_is_invalid_input(store: ObjectStore, settings: CommonSettings, tmp_path: Path) -> None:
    bomb = Keys.job_input(JOB, "bomb.png")
    store.put_bytes(settings.work_bucket, bomb, _png((12_000, 12_000), mode="1"))  # 144 Mpixel in a few kB
    deps = EncoderDeps(store=store, bucket=settings.work_bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"))
    with pytest.raises(InvalidInput, match="deliverables.logo: decompression bomb refused"):
        _resolver(deps, JOB, tmp_path)("deliverables.logo", bomb)


def test_the_generator_loads_reference_images_only_from_the_jobs_own_objects(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path, loopback: Server
) -> None:
    bucket, errors = settings.work_bucket, {}
    for ref in attacks(store, bucket, tmp_path, loopback):
        spec = RenderSpec(prompt="x", seed=1, frames=1, fps=1, width=64, height=64, reference_images=[ref])
        with pytest.raises(InvalidInput, match=r"^reference_images\[0\]: ") as caught:
            stored_references(store, bucket, JOB, spec, tmp_path)
        errors[ref] = str(caught.value)
    _same_answer(errors)
    assert loopback.requests == []
    own = Keys.job_input(JOB, "hero.png")
    store.put_bytes(bucket, own, _png())
    spec = RenderSpec(prompt="x", seed=1, frames=1, fps=1, width=64, height=64, reference_images=[own])
    [image] = load_references(stored_references(store, bucket, JOB, spec, tmp_path).reference_images)
    assert image.size == (8, 8)


def test_a_decompression_bomb_reference_image_is_invalid_input(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    bomb = Keys.job_input(JOB, "bomb.png")
    store.put_bytes(settings.work_bucket, bomb, _png((12_000, 12_000), mode="1"))
    spec = RenderSpec(prompt="x", seed=1, frames=1, fps=1, width=64, height=64, reference_images=[bomb])
    local = stored_references(store, settings.work_bucket, JOB, spec, tmp_path).reference_images
    with pytest.raises(InvalidInput, match=r"reference_images\[0\]: decompression bomb refused"):
        load_references(local)


def test_local_mode_stores_media_from_the_storyboards_folder_only(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    from reelforge.local_run import stage_local_media

    folder = tmp_path / "film"
    folder.mkdir()
    (folder / "logo.png").write_bytes(_png())
    (tmp_path / "outside.png").write_bytes(_png())
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    bucket = settings.work_bucket
    board = parse_storyboard({"segments": [{"id": "a", "prompt": "x"}], "deliverables": {"logo": "logo.png"}})
    staged = stage_local_media(board, folder, store=store, bucket=bucket, job_id=JOB)
    assert staged.deliverables.logo == Keys.job_input(JOB, "deliverables-logo.png")
    assert store.get_bytes(bucket, staged.deliverables.logo) == _png()
    errors = {}
    for ref in ("../outside.png", str(tmp_path / "outside.png"), "link.png", "/etc/hostname", "missing.png"):
        board = parse_storyboard({"segments": [{"id": "a", "prompt": "x"}], "deliverables": {"logo": ref}})
        with pytest.raises(InvalidInput, match="^deliverables.logo: ") as caught:
            stage_local_media(board, folder, store=store, bucket=bucket, job_id=JOB)
        errors[ref] = str(caught.value)
    _same_answer(errors)
