"""The /api/video/* endpoints on a real stack: one-segment jobs through every service, the cache, errors."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reelforge.stack import local_stack
from reelforge_gateway.routes.video import model_available
from reelforge_shared.bus import Bus
from reelforge_shared.events import JobFailed
from reelforge_shared.jobs import Ledger
from reelforge_shared.media import probe
from reelforge_shared.storage import Keys, ObjectStore
from support.paths import ROOT

FAST = {"steps": 2, "batch_size": 8}
SMALL = {"duration": 1, "fps": 3, "width": 160, "height": 96, "seed": 7}


def _png(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


async def _requested(settings, job_id: str) -> int:
    bus = await Bus.connect(settings)
    try:
        info = await bus.js.stream_info(bus.stream, subjects_filter=f"{settings.subject_prefix}.segment.requested")
        return sum((info.state.subjects or {}).values())
    finally:
        await bus.close()


@pytest.mark.slow
async def test_text_to_video_runs_the_pipeline_falls_back_and_caches(overrides, gitlab_standin, tmp_path: Path) -> None:
    config = {"default_text_to_video_model": "reelforge/tiny-sd", "sync_timeout_s": 240}
    # Delivery to the GitLab STAND-IN (tests/support/gitlab_standin.py): every video over 1 KiB, in 2 KiB parts.
    config |= {
        "gitlab_url": gitlab_standin.url,
        "gitlab_project": gitlab_standin.project,
        "gitlab_token": gitlab_standin.token,
        "gitlab_threshold_bytes": 1024,
        "gitlab_split_bytes": 2048,
    }
    async with local_stack(tmp_path / "state", **overrides, **FAST, **config) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as client:
            knobs = {"steps": 1, "guidance": 1.0, "quality": "low"}
            request = {"prompt": "a red kite", "model": "nobody/no-such-model", **knobs, **SMALL}
            first = await client.post("/api/video/text-to-video", json=request)
            assert first.status_code == 200, first.text
            assert first.headers["content-type"] == "video/mp4"
            assert first.headers["x-reelforge-cache"] == "miss"
            assert first.headers["x-reelforge-model"] == "reelforge/tiny-sd"
            assert "nobody/no-such-model" in first.headers["x-reelforge-model-fallback"]
            (tmp_path / "v.mp4").write_bytes(first.content)
            info = probe(tmp_path / "v.mp4")
            assert (info.width, info.height, info.codec, info.frame_count, info.fps) == (160, 96, "h264", 3, 3)
            assert b"crf=28.0" in first.content  # x264 notes its settings in the stream: the job's "low" preset, CRF 28

            # The same request: the stored video, nothing rendered again.
            again = await client.post("/api/video/text-to-video", json=request)
            assert again.status_code == 200
            assert again.headers["x-reelforge-cache"] == "hit"
            assert again.content == first.content
            assert await _requested(stack.settings, first.headers["x-reelforge-job"]) == 1
            job = (await client.get(f"/v1/jobs/{first.headers['x-reelforge-job']}")).json()
            assert job["status"] == "completed"
            assert job["segment_count"] == 1

            # Delivered by the delivery rules, each object a media_assets row (here in the work bucket: no database set).
            assets = (await client.get("/v1/assets", params={"job": first.headers["x-reelforge-job"]})).json()["assets"]
            kinds = {(a["type"], a["storage_provider"]) for a in assets}
            assert {("video_part", "gitlab"), ("manifest", "gitlab"), ("report", "s3")} <= kinds
            film_manifest = next(a for a in assets if a["name"].endswith("final.mp4.manifest.json"))
            assert film_manifest["metadata"]["size"] == len(first.content)
            assert film_manifest["metadata"]["parts"] > 1

            # examples/consumer.py, a downstream user of the bus, downloads the same film on job.completed
            # (from GitLab, joining its parts by the manifest).
            settings = stack.settings
            consumer = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "examples" / "consumer.py"),
                "--nats-url",
                settings.nats_url,
                "--prefix",
                settings.subject_prefix,
                "--out",
                str(tmp_path / "films"),
                "--job",
                first.headers["x-reelforge-job"],
                "--count",
                "1",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(consumer.communicate(), timeout=120)
            assert consumer.returncode == 0, err.decode()
            line = json.loads(out.decode().strip().splitlines()[-1])
            assert line["job_id"] == first.headers["x-reelforge-job"]
            assert Path(line["film"]).read_bytes() == first.content


async def test_video_requests_are_checked_and_answered_202_when_not_done_in_time(overrides, tmp_path: Path) -> None:
    config = {
        "default_text_to_video_model": "nobody/absent-default",
        "default_image_to_video_model": "reelforge/tiny-sd",
        "sync_timeout_s": 0,
        "max_upload_bytes": 4096,
        "max_video_duration": 30,
        "api_tokens": "ci:tok-ci-secret",
    }
    async with local_stack(tmp_path / "state", names=["gateway"], **overrides, **config) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as anonymous:
            for response in (
                await anonymous.post("/api/video/text-to-video", json={"prompt": "x"}),
                await anonymous.get("/v1/assets", params={"job": "j-1"}),
            ):
                assert response.status_code == 401
                assert response.json()["error"] == "unauthorized"
        token = {"Authorization": "Bearer tok-ci-secret"}
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=token) as client:
            too_long = await client.post("/api/video/text-to-video", json={"prompt": "x", "duration": 31})
            body = too_long.json()
            assert too_long.status_code == 422
            assert body["error"] == "invalid_request"
            assert "duration" in body["message"]
            assert set(body) == {"error", "message", "details", "timestamp"}
            missing = await client.post("/api/video/text-to-video", json={"prompt": "x", "model": "nobody/nothing"})
            assert missing.status_code == 503
            assert missing.json()["error"] == "model_not_found"
            assert missing.json()["details"] == {"requested_model": "nobody/nothing", "fallback_model": "nobody/absent-default"}

            big = await client.post(
                "/api/video/image-to-video", files={"image": ("a.png", b"\x89PNG" + b"0" * 5000, "image/png")}
            )
            assert big.status_code == 413
            assert big.json()["error"] == "too_large"
            corrupt = await client.post("/api/video/image-to-video", files={"image": ("a.png", _png()[:60], "image/png")})
            assert corrupt.status_code == 422
            assert corrupt.json()["error"] == "invalid_image"
            bad_fps = await client.post(
                "/api/video/image-to-video", files={"image": ("a.png", _png(), "image/png")}, data={"fps": "0"}
            )
            assert bad_fps.status_code == 422
            assert bad_fps.json()["details"]["fields"][0]["field"] == "fps"

            # Valid, but no generator runs here and the sync timeout is 0: 202 with the job, the image stored.
            form = {"prompt": "it moves", "model": "nobody/else", **{k: str(v) for k, v in SMALL.items()}}
            accepted = await client.post(
                "/api/video/image-to-video",
                files={"image": ("a.jpg", _png(), "image/png")},
                data=form,
            )
            assert accepted.status_code == 202, accepted.text
            job_id = accepted.json()["job_id"]
            assert accepted.headers["location"] == f"/v1/jobs/{job_id}"
            assert accepted.json()["model"] == "reelforge/tiny-sd"
            assert accepted.json()["model_fallback"]["details"]["requested_model"] == "nobody/else"
            store = ObjectStore.from_settings(stack.settings)
            stored = Image.open(io.BytesIO(store.get_bytes(stack.settings.work_bucket, Keys.input_image(job_id))))
            assert stored.size == (64, 48)
            assert stored.format == "PNG"
            board = store.get_json(stack.settings.work_bucket, Keys.storyboard(job_id))
            assert board["segments"][0]["frames"] == 3
            assert board["characters"]["subject"]["reference_image"] == Keys.input_image(job_id)  # a key, never a URL

            # The job fails: the same request now answers 502 with the job's error (nothing is rendered again).
            bus = await Bus.connect(stack.settings)
            await bus.publish(JobFailed(job_id=job_id, stage="generator", error="out of memory"))
            async with asyncio.timeout(30):
                async for record in (await Ledger.open(bus)).watch(job_id):
                    if record is not None and record.status == "failed":
                        break
            await bus.close()
            failed = await client.post("/api/video/image-to-video", files={"image": ("a.jpg", _png(), "image/png")}, data=form)
            assert failed.status_code == 502
            assert failed.json()["error"] == "job_failed"
            assert "out of memory" in failed.json()["details"]["job_error"]


def test_a_model_is_available_as_a_local_folder_in_the_hf_cache_or_built_in(tmp_path: Path) -> None:
    local = tmp_path / "my-model"
    local.mkdir()
    assert not model_available(str(local))
    (local / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    assert model_available(str(local))
    assert model_available("reelforge/tiny-sd")
    assert not model_available("reelforge/tiny-sd", allow_test_model=False)  # outside local mode, as the generator judges it
    cache = tmp_path / "hub"
    snapshot = cache / "models--someorg--video-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (cache / "models--someorg--video-model" / "refs").mkdir()
    (cache / "models--someorg--video-model" / "refs" / "main").write_text("abc123")
    assert model_available("someorg/video-model", hf_cache_dir=str(cache))
    assert not model_available("someorg/other-model", hf_cache_dir=str(cache))


def test_a_segments_own_steps_and_guidance_apply_to_its_render_only() -> None:
    """Read from the segment's spec per call; the strategy (shared by every segment of the worker) is never changed."""
    from reelforge_generator.clips import Clips
    from reelforge_generator.per_frame import PerFrame
    from reelforge_generator.strategy import Knobs
    from reelforge_shared.events import RenderSpec

    assert issubclass(PerFrame, Knobs)
    assert issubclass(Clips, Knobs)

    class Kind(Knobs):
        steps, guidance = 30, 7.5

    kind, base = Kind(), {"prompt": "p", "seed": 1, "frames": 1, "fps": 1, "width": 64, "height": 64}
    fewer, weaker = RenderSpec(**base, steps=4), RenderSpec(**base, guidance=2.0)
    assert (kind.steps_for(fewer), kind.guidance_for(fewer)) == (4, 7.5)
    assert (kind.steps_for(weaker), kind.guidance_for(weaker)) == (30, 2.0)
    assert (kind.steps, kind.guidance) == (30, 7.5)
    assert vars(kind) == {}
