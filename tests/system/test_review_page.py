"""The review page (``/review/{job_id}``) in Debian's headless chromium, driven by Playwright, on the real services.

The job is submitted while no generator runs, so the page is open and following before any segment renders; the
generator then starts beside the other services (same NATS, S3 and prefix) and the page must show the progress
arriving over the SSE stream, not only the finished job it loads at the end. Re-rendering from the page and playing
version 2 is tested with the hand-off film (tests/system/test_timeline.py); selecting a take here, on a film of takes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import opentimelineio as otio
import pytest

from reelforge.stack import SERVICE_MODULES, local_stack
from support.polling import frames_rendered, poll_job

pytestmark = pytest.mark.slow  # a film through every service while a browser watches

TOKENS = {"api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret"}
ALICE = {"Authorization": "Bearer tok-alice-secret"}
FAST = {"steps": 2, "batch_size": 1}  # one segment at a time: the progress has steps to show
STREAMS = {"max_event_streams": 1}  # per token: a second open event stream is a 429
BOARD = {
    "title": "Review me",
    "output": {"width": 64, "height": 36},
    "segments": [
        {"id": "walk", "prompt": "walks into the field", "frames": 3, "fps": 3},
        {"id": "look", "prompt": "looks at the sky", "frames": 3, "fps": 3},
        {"id": "sit", "prompt": "sits down on a bench", "frames": 3, "fps": 3},
    ],
}
ARTEFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artefacts"  # out/ is ignored by git
# Every value the progress bar takes, in order (setting HTMLProgressElement.value sets its attribute), and each
# still that appears on a card while the job runs.
RECORD_PROGRESS = """
window.progressSeen = [];
window.stillsSeen = [];
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("progress");
  new MutationObserver(() => window.progressSeen.push([bar.value, bar.max])).observe(bar, { attributes: true });
  // Stills given to cards already on the page (a rebuild sets them before the cards are attached), and the status then.
  new MutationObserver((changes) => {
    const said = document.getElementById("status").textContent;
    for (const c of changes) window.stillsSeen.push([c.target.closest(".card").dataset.index, said]);
  }).observe(document.getElementById("segments"), { subtree: true, attributeFilter: ["src"] });
});
"""


async def test_the_review_page_follows_a_running_job_to_its_film_and_hides_other_owners_jobs(overrides, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make install` installs it"
    without_generator = [n for n in SERVICE_MODULES if n != "generator"]
    async with local_stack(tmp_path / "services", names=without_generator, **overrides, **FAST, **TOKENS, **STREAMS) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            submitted = await client.post("/v1/jobs", json=BOARD, headers=ALICE)
            assert submitted.status_code == 202, submitted.text
            job = submitted.json()["job_id"]
            # The page and its script hold no data and load without a token; the API they call needs one.
            page_html = await client.get(f"/review/{job}")
            assert page_html.status_code == 200
            assert job not in page_html.text
            assert "text/html" in page_html.headers["content-type"]
            assert (await client.get("/review/static/review.js")).status_code == 200
            assert (await client.get(f"/v1/jobs/{job}")).status_code == 401
            assert (await client.get(f"/v1/jobs/{job}/media")).status_code == 401

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            await page.add_init_script(RECORD_PROGRESS)
            await page.goto(f"{stack.gateway_url}/review/{job}")
            status = page.locator("#status")
            await expect(page.locator("#login")).to_be_visible()
            await expect(status).to_contain_text("Enter an API token")
            # A wrong token is refused; another owner's token finds no such job (the same answer as a made-up id).
            for token, said in (("not-a-token", "refused"), ("tok-bob-secret", "not found")):
                await page.fill("#token", token)
                await page.click("#login button")
                await expect(status).to_contain_text(said)
                await expect(page.locator("#login")).to_be_visible()
                assert await page.locator("#review").is_hidden()
                assert await page.locator("#segments .card").count() == 0
                assert await page.evaluate("sessionStorage.getItem('reelforge-token')") is None

            # Alice already follows the job elsewhere, at her token's limit of streams: the page says so and waits
            # before asking again, instead of asking in a loop.
            streams: list[str] = []
            page.on("request", lambda r: streams.append(r.url) if r.url.endswith("/events") else None)
            async with (
                httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=ALICE) as elsewhere,
                elsewhere.stream("GET", f"/v1/jobs/{job}/events") as held,
            ):
                assert held.status_code == 200
                await page.fill("#token", "tok-alice-secret")
                await page.click("#login button")
                await expect(status).to_contain_text("interrupted")
                await page.wait_for_timeout(2000)
                assert 1 <= len(streams) <= 2, streams
            cards = page.locator("#segments .card")
            await expect(cards).to_have_count(3)
            assert "tok-alice" not in page.url
            await expect(status).to_contain_text("queued", timeout=15_000)  # the stream given up elsewhere: followed here
            assert await page.locator("#progress").evaluate("bar => bar.value") == 0

            # The generator starts: the page sees each segment's stages arrive, then plays the film.
            async with local_stack(tmp_path / "generator", names=["generator"], **overrides, **FAST):
                player = page.locator("#player")
                await expect(player).to_have_attribute("data-version", "1", timeout=300_000)
                await expect(status).to_contain_text("completed")
            seen = await page.evaluate("window.progressSeen")
            values, top = [v for v, _ in seen], 4 * len(BOARD["segments"]) + 1
            assert values == sorted(values), seen
            assert values[-1] == top == seen[-1][1], seen
            # Steps between nothing and the film, seen while it ran (a page that only reloads at the end jumps 0 -> top).
            assert len({v for v in values if 0 < v < top}) >= 3, seen
            # Each segment's still shows on its card as soon as it is encoded, before the film is made.
            stills = await page.evaluate("window.stillsSeen")
            assert {n for n, said in stills if "completed" not in said} == {"1", "2", "3"}, stills

            assert await player.evaluate(
                "v => new Promise(ok => v.readyState >= 1 ? ok(v.duration) : v.onloadedmetadata = () => ok(v.duration))"
            ) == pytest.approx(3.0, abs=0.2)
            for n, card in enumerate(await cards.all(), start=1):
                segment = BOARD["segments"][n - 1]
                assert await card.locator("h2").inner_text() == f"{n} · {segment['id']}"
                assert segment["prompt"] in await card.locator(".prompt").inner_text()
                assert (await card.locator(".stage").inner_text()).startswith("delivered, attempt 1")
                assert await card.locator(".thumb").evaluate("img => img.complete && img.naturalWidth > 0")
                assert await card.locator(".scores tr").count() > 0
                assert await card.locator(".rerender button").is_visible()
            downloads = {await a.inner_text() for a in await page.locator("#downloads a").all()}
            assert {"film", "otio", "fcpxml", "fcp7xml", "edl", "kdenlive", "bundle"} <= downloads
            # Readable on a phone: nothing is wider than the screen.
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTEFACTS / "review-page-phone.png"), full_page=True)
            await browser.close()


TAKES_BOARD = {
    "title": "Two takes",
    "output": {"width": 64, "height": 36},
    "segments": [
        {"id": "door", "prompt": "a red door", "frames": 2, "fps": 2, "takes": 2},
        {"id": "boat", "prompt": "a green boat", "frames": 2, "fps": 2},
    ],
}


async def test_a_take_selected_on_the_review_page_becomes_the_version_it_plays(overrides, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make install` installs it"
    async with local_stack(tmp_path / "services", **overrides, **FAST, **TOKENS) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=ALICE) as client:
            job = (await client.post("/v1/jobs", json=TAKES_BOARD)).json()["job_id"]
            body = await poll_job(client, job, lambda b: b["status"] == "completed", attempts=6000)
            takes = body["segments"]["1"]["takes"]
            other = next(k for k, t in takes.items() if not t["won"])  # the take QA's policy left out of the film
            assert body["segments"]["2"]["takes"] == {}  # one take: nothing to choose
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            await page.goto(f"{stack.gateway_url}/review/{job}")
            await page.fill("#token", "tok-alice-secret")
            await page.click("#login button")
            player = page.locator("#player")
            await expect(player).to_have_attribute("data-version", "1")
            # Each checked take not in the film has its button; the take in the film and a single-take segment have none.
            await expect(page.locator('#segments .card[data-index="1"] .select-take')).to_have_text([f"use take {other}"])
            await expect(page.locator('#segments .card[data-index="2"] .select-take')).to_have_count(0)
            await page.locator('#segments .card[data-index="1"] .select-take').click()
            await expect(player).to_have_attribute("data-version", "2", timeout=300_000)
            await expect(page.locator("#status")).to_contain_text("completed")
            assert "/v2/" in await player.get_attribute("src")
            # The film's version 2 has that take, and the page offers the one it replaced instead.
            await expect(page.locator('#segments .card[data-index="1"] .select-take')).to_have_count(1)
            assert await page.locator('#segments .card[data-index="1"] .select-take').inner_text() != f"use take {other}"
            await browser.close()
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=ALICE) as client:
            body = (await client.get(f"/v1/jobs/{job}")).json()
            assert body["segments"]["1"]["takes"][other]["won"] is True

            # The editor's way back: the take now beside the film lifted from its disabled track onto V1 and the
            # timeline re-imported is that take's selection, version 3, nothing rendered.
            timeline = otio.adapters.read_from_string((await client.get(f"/v1/jobs/{job}/timeline")).text, "otio_json")
            film, alternates = timeline.video_tracks()[0], timeline.video_tracks()[1]
            first = next(iter(film.find_clips()))
            lifted = next(c for c in alternates.find_clips() if c.metadata["reelforge"]["index"] == 1).deepcopy()
            film[film.index(first)] = lifted
            frames = frames_rendered()
            answer = await client.post(f"/v1/jobs/{job}/timeline", content=otio.adapters.write_to_string(timeline, "otio_json"))
            assert answer.status_code == 202, answer.text
            body = await poll_job(client, job, lambda b: b["status"] == "completed" and b["film_version"] == 3, attempts=3000)
            back = str(lifted.metadata["reelforge"]["take"])
            assert back != other
            assert body["segments"]["1"]["takes"][back]["won"] is True
            assert frames_rendered() == frames
