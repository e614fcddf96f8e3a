"""Every job has one owner, and another owner cannot tell it exists: two tokens across every job route, on real servers."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from PIL import Image

from reelforge.stack import local_stack
from reelforge_gateway.links import Links
from reelforge_gateway.submit import submit_job
from reelforge_shared.bus import Bus
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard

BOARD = {"title": "ACME secret launch teaser", "segments": [{"id": "a", "prompt": "walks"}]}
SETTINGS = {
    "api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret,ops:tok-ops-secret",
    "api_admins": "ops",
    "sync_timeout_s": 0,
    "default_text_to_video_model": "reelforge/tiny-zeroscope",
    "default_image_to_video_model": "reelforge/tiny-svd",
}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
BOB = {"Authorization": "Bearer tok-bob-secret"}
OPS = {"Authorization": "Bearer tok-ops-secret"}
VIDEO = {"prompt": "a cat walks", "duration": 1, "fps": 3, "width": 64, "height": 64, "seed": 3}


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


async def _segments_known(client: httpx.AsyncClient, job_id: str) -> dict:
    """The job's view once the ledger has folded its segment requests (it follows the bus)."""
    for _ in range(300):
        view = (await client.get(f"/v1/jobs/{job_id}", headers=ALICE)).json()
        if view["segments"]:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"no segment of {job_id} in the ledger: {view}")


async def _routes_naming(client: httpx.AsyncClient, job_id: str) -> dict[str, httpx.Response]:
    """Every route that names a job, as ``client`` calls it."""
    return {
        "get": await client.get(f"/v1/jobs/{job_id}"),
        "events": await client.get(f"/v1/jobs/{job_id}/events"),
        "cancel": await client.post(f"/v1/jobs/{job_id}/cancel"),
        "rerender": await client.post(f"/v1/jobs/{job_id}/segments/1/rerender", json={"seed": 1}),
        "film": await client.get(f"/v1/jobs/{job_id}/film"),
        "assets": await client.get("/v1/assets", params={"job": job_id}),
    }


async def test_another_owner_gets_404_on_every_route_that_names_a_job(overrides, tmp_path: Path) -> None:
    async with local_stack(tmp_path, names=["gateway"], **overrides, **SETTINGS) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            mine = {
                "v1": (await client.post("/v1/jobs", json=BOARD, headers=ALICE)).json()["job_id"],
                "text-to-video": (await client.post("/api/video/text-to-video", json=VIDEO, headers=ALICE)).json()["job_id"],
                "image-to-video": (
                    await client.post(
                        "/api/video/image-to-video",
                        files={"image": ("a.png", _png(), "image/png")},
                        data={k: str(v) for k, v in VIDEO.items()},
                        headers=ALICE,
                    )
                ).json()["job_id"],
            }
            # A job published without the API (the CLI, straight onto the bus) is owned by `local`: admins only.
            bus = await Bus.connect(stack.settings)
            await submit_job(
                parse_storyboard(BOARD),
                bus=bus,
                store=ObjectStore.from_settings(stack.settings),
                bucket=stack.settings.work_bucket,
                job_id="j-from-the-bus",
            )
            await bus.close()
            for path, job_id in [*mine.items(), ("bus", "j-from-the-bus")]:
                async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=BOB) as bob:
                    answers = await _routes_naming(bob, job_id)
                for route, response in answers.items():
                    assert response.status_code == 404, (path, route, response.text)
                    assert response.json()["error"] == "job_not_found"
                    assert response.json()["details"] == {"job_id": job_id}
            listed = (await client.get("/v1/jobs", headers=BOB)).json()
            assert listed["total"] == 0
            assert "ACME" not in str(listed)
            alice_sees = {j["job_id"] for j in (await client.get("/v1/jobs", headers=ALICE)).json()["jobs"]}
            assert alice_sees == set(mine.values())
            admin_sees = {j["job_id"] for j in (await client.get("/v1/jobs", headers=OPS, params={"limit": 100})).json()["jobs"]}
            assert admin_sees >= {*mine.values(), "j-from-the-bus"}
            assert (await client.get("/v1/jobs/j-from-the-bus", headers=OPS)).status_code == 200
            assert (await client.get("/v1/jobs/j-from-the-bus", headers=ALICE)).status_code == 404

            # The video cache is per owner: bob's identical request is his own job, untouched by alice's cancel.
            bobs = await client.post("/api/video/text-to-video", json=VIDEO, headers=BOB)
            assert bobs.status_code == 202
            assert bobs.json()["job_id"] != mine["text-to-video"]
            assert (await client.post(f"/v1/jobs/{mine['text-to-video']}/cancel", headers=ALICE)).status_code == 200
            again = await client.post("/api/video/text-to-video", json=VIDEO, headers=BOB)
            assert again.status_code == 202
            assert again.json()["job_id"] == bobs.json()["job_id"]
            assert (
                await client.post("/api/video/text-to-video", json=VIDEO, headers=ALICE)
            ).status_code == 502  # hers: cancelled

            # No presigned URL in a storyboard, a record or a view: the uploaded image is named by its key.
            store = ObjectStore.from_settings(stack.settings)
            image_job = mine["image-to-video"]
            board = store.get_json(stack.settings.work_bucket, Keys.storyboard(image_job))
            assert board["characters"]["subject"]["reference_image"] == Keys.input_image(image_job)
            view = await _segments_known(client, image_job)
            assert view["segments"]["1"]["spec"]["reference_images"] == [Keys.input_image(image_job)]
            for job_id in mine.values():
                assert "X-Amz-" not in (await client.get(f"/v1/jobs/{job_id}", headers=ALICE)).text


def test_download_links_are_short_lived_and_signed_for_the_public_endpoint() -> None:
    settings = CommonSettings(s3_endpoint="http://minio.internal:9000", s3_access_key="k", s3_secret_key="s" * 16)
    links = Links.from_settings(settings, public_endpoint="https://media.example.com", ttl_s=300)
    url = urlsplit(links.url("films", "j-1/final.mp4"))
    assert (url.scheme, url.netloc, url.path) == ("https", "media.example.com", "/films/j-1/final.mp4")
    assert parse_qs(url.query)["X-Amz-Expires"] == ["300"]
    assert links.of_storage_url("s3://films/j-1/final.mp4") is not None
    assert links.of_storage_url("https://gitlab/x") is None
