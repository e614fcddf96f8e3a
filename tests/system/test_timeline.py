"""Hand-off to an editor: a finished film as an OpenTimelineIO timeline, FCPXML, FCP7 XML, EDL, Kdenlive, and a bundle.

One tiny film is rendered once for the module by ``reelforge run``'s own code (real NATS, S3, ffmpeg and the
tiny model): three shots of 6 frames at 64x36 and 6 fps, a dissolve and a fade, one shot with sound.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from reelforge.cli import app
from reelforge.local_run import run_storyboard
from reelforge_encoder.ffmpeg import ffmpeg_exe
from reelforge_gateway.timeline.export import read
from reelforge_shared.logging import configure_logging
from reelforge_shared.media import probe
from reelforge_shared.storyboard import parse_storyboard

pytestmark = pytest.mark.slow  # one tiny film through every service, then each test reads it

FPS, FRAMES = 6, 6
STORYBOARD = {
    "title": "Hand-off",
    "output": {"width": 64, "height": 36},
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "segments": [
        {"id": "open", "prompt": "walks into the field", "characters": ["hero"], "frames": FRAMES, "fps": FPS},
        {
            "id": "turn",
            "prompt": "looks at the sky",
            "frames": FRAMES,
            "fps": FPS,
            "transition": {"type": "dissolve", "duration": 0.5},
        },
        {"id": "close", "prompt": "sits down", "characters": ["hero"], "frames": FRAMES, "fps": FPS, "transition": "fade"},
    ],
}
OVERLAPS = {2: 3, 3: 6}  # film frames of the transition into shot 2 (0.5 s) and 3 (fade: 1 s)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, fresh_settings) -> dict:
    """A finished `reelforge run` output folder, and the settings of the servers that hold its job."""
    tmp = tmp_path_factory.mktemp("handoff")
    tone = tmp / "tone.wav"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(tone)], check=True
    )
    raw = json.loads(json.dumps(STORYBOARD))
    raw["segments"][1]["audio"] = tone.name  # a file in the storyboard's folder
    overrides = fresh_settings() | {
        "steps": 2,
        "qa_max_attempts": 1,
    }
    out = tmp / "out"
    out.mkdir()
    import asyncio

    try:
        assert asyncio.run(run_storyboard(parse_storyboard(raw), out, folder=tmp, **overrides))
    finally:
        configure_logging("INFO", json=True)  # the run logged into its folder's log file, closed now
    return {"out": out, "overrides": overrides, "job_id": json.loads((out / "report.json").read_text())["job_id"]}


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _starts() -> list[int]:
    return [i * FRAMES for i in range(len(STORYBOARD["segments"]))]


def test_otio_round_trip_matches_the_film_to_the_frame(finished: dict) -> None:
    out = finished["out"]
    _cli("timeline", str(out), "--format", "otio")
    timeline = otio.adapters.read_from_file(str(out / "timeline.otio"))
    film = probe(out / "final.mp4")
    video = timeline.video_tracks()[0]
    assert video.duration() == otio.opentime.RationalTime(film.frame_count, FPS)
    assert film.frame_count == 3 * FRAMES
    assert {"width": 64, "height": 36, "fps": FPS, "job_id": finished["job_id"]}.items() <= dict(
        timeline.metadata["reelforge"]
    ).items()
    clips = list(video.find_clips())
    assert [c.metadata["reelforge"]["segment_id"] for c in clips] == ["open", "turn", "close"]
    raw = json.loads((out / "report.json").read_text())
    report, film_qa = {s["index"]: s for s in raw["segments"]}, raw["film_qa"]
    for n, (clip, start) in enumerate(zip(clips, _starts(), strict=True), start=1):
        # Where each clip sits and what of its media it plays: the film's frames, to the frame.
        assert clip.range_in_parent() == otio.opentime.TimeRange(
            otio.opentime.RationalTime(start, FPS), otio.opentime.RationalTime(FRAMES, FPS)
        )
        assert clip.source_range == otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, FPS), otio.opentime.RationalTime(FRAMES, FPS)
        )
        media = out / clip.media_reference.target_url
        assert media.resolve() == (out / "segments" / f"{n:03d}.mp4").resolve()
        assert probe(media).frame_count == FRAMES
        meta = clip.metadata["reelforge"]
        assert meta["prompt"] == report[n]["prompt"]
        assert meta["seed"] == report[n]["seed"]
        assert meta["model"]
        assert meta["qa"] == pytest.approx(report[n]["qa"])
        assert meta["attempt"] == 1
        # Every failed gate and every continuity pair below threshold is a marker on its clip.
        kinds = [(m.metadata["reelforge"]["kind"], m.name.split(":")[0]) for m in clip.markers]
        assert sorted(name for kind, name in kinds if kind == "gate") == sorted(
            f"QA gate {g}" for g in report[n]["qa_failed_gates"]
        )
        broken = [
            p
            for c in (*film_qa["characters"], *film_qa["locations"], *film_qa["light"])
            for p in c["pairs"]
            if not c["passed"]
            and p["gated"]
            and p["score"] < c["threshold"]
            and p["a"] == clip.metadata["reelforge"]["segment_id"]
        ]
        assert len([k for k, _ in kinds if k == "continuity"]) == len(broken)
    transitions = [t for t in video if isinstance(t, otio.schema.Transition)]
    assert [(t.metadata["reelforge"]["type"], t.in_offset.value, t.out_offset.value) for t in transitions] == [
        ("dissolve", 2, 1),  # 3 frames: the film holds "open" 1 frame past its end and "turn" 2 frames before its start
        ("fade", 3, 3),
    ]
    sound = timeline.audio_tracks()[0]  # only "turn" has sound: a gap, its clip, a gap
    assert [type(i).__name__ for i in sound] == ["Gap", "Clip", "Gap"]
    assert sound.duration() == video.duration()


def _grey(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)])


def test_the_kdenlive_timeline_rendered_by_melt_is_the_film(finished: dict, tmp_path: Path) -> None:
    melt = shutil.which("melt")
    assert melt, "melt (Debian's MLT) is missing: `make install` installs it"
    bundle = tmp_path / "bundle.zip"
    _cli("timeline", str(finished["out"]), "--bundle", "--output", str(bundle))
    with zipfile.ZipFile(bundle) as z:
        z.extractall(tmp_path / "b")
    rendered = tmp_path / "melt.mkv"
    subprocess.run(
        [melt, "-silent", str(tmp_path / "b" / "timeline.kdenlive"), "-consumer", f"avformat:{rendered}", "vcodec=ffv1", "an=1"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    ours, film = _grey(rendered), _grey(finished["out"] / "final.mp4")
    assert ours.shape == film.shape  # the film's duration and size
    inside = set()
    for n, overlap in OVERLAPS.items():
        start = _starts()[n - 1]
        inside |= set(range(start - (overlap - overlap // 2), start + overlap // 2))
    outside = [i for i in range(len(film)) if i not in inside]
    diffs = [float(np.abs(ours[i] - film[i]).mean()) for i in outside]
    assert max(diffs) < 4.0, diffs  # the same frames, within the encodes' tolerance
    # A frame from the wrong shot would differ by far more: the check can tell shots apart.
    assert float(np.abs(film[0] - film[-1]).mean()) > 3 * max(diffs) + 3


def test_fcpxml_fcp7_and_edl_read_back(finished: dict) -> None:
    from xml.etree import ElementTree

    out = finished["out"]
    for fmt in ("fcpxml", "fcp7xml", "edl"):
        _cli("timeline", str(out), "--format", fmt)
    # FCPXML: valid against Apple's DTD (1.8, the version the adapter writes; xmllint from Debian's libxml2-utils) ...
    xmllint = shutil.which("xmllint")
    assert xmllint, "xmllint (Debian's libxml2-utils) is missing: `make install` installs it"
    dtd = Path(__file__).resolve().parents[1] / "support" / "fcpxml" / "FCPXMLv1_8.dtd"
    valid = subprocess.run(
        [xmllint, "--noout", "--dtdvalid", str(dtd), str(out / "timeline.fcpxml")], capture_output=True, text=True
    )
    assert valid.returncode == 0, valid.stderr
    broken = (out / "timeline.fcpxml").read_text().replace("<spine>", "<spine><gap/>", 1)  # a gap needs its duration
    refused = subprocess.run([xmllint, "--noout", "--dtdvalid", str(dtd), "-"], input=broken, capture_output=True, text=True)
    assert refused.returncode != 0
    # ... and what it says: the format, the assets, the spine.
    root = ElementTree.parse(out / "timeline.fcpxml").getroot()  # noqa: S314 - our own output
    assert root.tag == "fcpxml"
    assert root.get("version")
    assert [f.get("frameDuration") for f in root.findall("./resources/format")] == ["25/600s"]  # 24 fps: 4 per picture
    assets = root.findall("./resources/asset")
    assert sorted(a.get("src") for a in assets) == [f"segments/{n:03d}.mp4" for n in (1, 2, 3)]
    spine = root.find(".//sequence/spine")
    assert spine is not None

    def seconds(value: str | None) -> Fraction:
        return Fraction(str(value).removesuffix("s"))

    clips = [(c.get("name"), seconds(c.get("offset")), seconds(c.get("duration"))) for c in spine if c.tag == "clip"]
    assert clips == [("001 open", 0, 1), ("002 turn", 1, 1), ("003 close", 2, 1)]
    transitions = [(t.get("name"), seconds(t.get("offset")), seconds(t.get("duration"))) for t in spine if t.tag == "transition"]
    assert transitions == [("Cross Dissolve", Fraction(4, 6), Fraction(3, 6)), ("Fade to Color", Fraction(9, 6), 1)]
    # FCP7 XML and the EDL are read back by their OpenTimelineIO adapters.
    fcp7 = read((out / "timeline.xml").read_text(), "fcp7xml")
    assert [c.name for c in fcp7.video_tracks()[0].find_clips()] == ["001 open", "002 turn", "003 close"]
    assert fcp7.video_tracks()[0].duration().to_frames() == 3 * 24  # at 24 fps, FCP7's nearest timecode rate
    edl = read((out / "timeline.edl").read_text(), "edl")
    video = edl.video_tracks()[0]
    assert video.duration().to_frames() == 3 * 24
    assert [c.name for c in video.find_clips()] == ["001 open", "002 turn", "003 close"]
    assert len([t for t in video if isinstance(t, otio.schema.Transition)]) == 2


def test_the_bundle_holds_every_timeline_the_media_and_a_readme(finished: dict, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.zip"
    _cli("timeline", str(finished["out"]), "--bundle", "--output", str(bundle))
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        timeline = read(z.read("timeline.otio"))
        readme = z.read("README.txt").decode()
    media = {"media/001-open.mp4", "media/002-turn.mp4", "media/003-close.mp4"}
    assert {
        "README.txt",
        "final.mp4",
        "timeline.otio",
        "timeline.fcpxml",
        "timeline.xml",
        "timeline.edl",
        "timeline.kdenlive",
    } | media == names
    assert {c.media_reference.target_url for c in timeline.find_clips()} == media  # relative, inside the bundle
    assert all(m in readme for m in media)
    assert "final.mp4" in readme


TOKENS = {"api_tokens": "alice:tok-alice-secret,bob:tok-bob-secret"}
ALICE, BOB = {"Authorization": "Bearer tok-alice-secret"}, {"Authorization": "Bearer tok-bob-secret"}


async def test_the_api_serves_the_timeline_and_the_bundle_of_the_callers_own_job(finished: dict, tmp_path: Path) -> None:
    import httpx

    from reelforge.stack import local_stack
    from reelforge_shared.bus import Bus
    from reelforge_shared.jobs import Ledger

    job = finished["job_id"]
    async with local_stack(tmp_path, names=["gateway"], **finished["overrides"], **TOKENS) as stack:
        bus = await Bus.connect(stack.settings)
        try:  # the film was made by `reelforge run`: alice's, as if she had submitted it

            def owned_by_alice(record) -> None:
                record.owner = "alice"
                record.record("test.owner")

            await (await Ledger.open(bus)).update(job, owned_by_alice)
        finally:
            await bus.close()
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            answer = await client.get(f"/v1/jobs/{job}/timeline", params={"format": "otio"})
            assert answer.status_code == 200
            assert job in answer.headers["content-disposition"]
            timeline = read(answer.content)
            assert [c.media_reference.target_url for c in timeline.video_tracks()[0].find_clips()] == [
                "media/001-open.mp4",
                "media/002-turn.mp4",
                "media/003-close.mp4",
            ]
            # Short-lived URLs when asked: each one fetches its segment.
            answer = await client.get(f"/v1/jobs/{job}/timeline", params={"format": "fcp7xml", "media": "urls"})
            urls = [c.media_reference.target_url for c in read(answer.content, "fcp7xml").video_tracks()[0].find_clips()]
            assert len(urls) == 3
            assert all(u.startswith("http") for u in urls)
            segment = await client.get(urls[1], headers={})
            assert segment.status_code == 200
            assert segment.content[4:8] == b"ftyp"
            edl = await client.get(f"/v1/jobs/{job}/timeline", params={"format": "edl"})
            assert edl.status_code == 200
            assert "002  " in edl.text

            bundle = await client.get(f"/v1/jobs/{job}/bundle")
            assert bundle.status_code == 200
            assert bundle.headers["content-type"] == "application/zip"
            (tmp_path / "b.zip").write_bytes(bundle.content)
            with zipfile.ZipFile(tmp_path / "b.zip") as z:
                assert {"README.txt", "final.mp4", "timeline.kdenlive", "media/002-turn.mp4"} <= set(z.namelist())

            # Refusals: a format nobody asked for, a version not made, another token's job (the same 404 as none).
            assert (await client.get(f"/v1/jobs/{job}/timeline", params={"format": "aaf"})).status_code == 422
            late = await client.get(f"/v1/jobs/{job}/timeline", params={"version": 7})
            assert late.status_code == 409
            assert late.json()["error"] == "film_not_ready"
            for path, who in (
                (f"/v1/jobs/{job}/timeline", BOB),
                (f"/v1/jobs/{job}/bundle", BOB),
                ("/v1/jobs/j-none/timeline", ALICE),
            ):
                refused = await client.get(path, headers=who)
                assert refused.status_code == 404, path
                assert refused.json()["error"] == "job_not_found", path


ARTEFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artefacts"  # out/ is ignored by git


async def test_the_review_page_plays_the_film_shows_each_segment_and_re_renders_one(finished: dict, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    from reelforge.stack import local_stack
    from reelforge_shared.bus import Bus
    from reelforge_shared.jobs import Ledger

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make install` installs it"
    job = finished["job_id"]
    async with local_stack(tmp_path / "state", **finished["overrides"], **TOKENS) as stack:
        bus = await Bus.connect(stack.settings)
        try:

            def owned_by_alice(record) -> None:
                record.owner = "alice"
                record.record("test.owner")

            await (await Ledger.open(bus)).update(job, owned_by_alice)
        finally:
            await bus.close()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            await page.goto(f"{stack.gateway_url}/review/{job}")
            # No token yet: the page asks for one and keeps it in the tab, never in the URL.
            await expect(page.locator("#login")).to_be_visible()
            await page.fill("#token", "tok-alice-secret")
            await page.click("#login button")
            await expect(page.locator("#segments .card")).to_have_count(3)
            assert "tok-alice" not in page.url
            assert await page.evaluate("sessionStorage.getItem('reelforge-token')") == "tok-alice-secret"
            player = page.locator("#player")
            await expect(player).to_have_attribute("data-version", "1")
            assert await player.evaluate(
                "v => new Promise(ok => v.readyState >= 1 ? ok(v.duration) : v.onloadedmetadata = () => ok(v.duration))"
            ) == pytest.approx(3.0, abs=0.1)
            for n, card in enumerate(await page.locator("#segments .card").all(), start=1):
                assert await card.locator("h2").inner_text() == f"{n} · {STORYBOARD['segments'][n - 1]['id']}"
                assert await card.locator(".thumb").evaluate("img => img.complete && img.naturalWidth > 0")
                assert await card.locator(".scores tr").count() > 0
            # Readable on a phone: nothing wider than the screen.
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            links = [await a.inner_text() for a in await page.locator("#downloads a").all()]
            assert {"film", "otio", "fcpxml", "edl", "kdenlive", "bundle"} <= set(links)
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTEFACTS / "review-page.png"), full_page=True)

            # A re-render from the page: progress moves through the SSE stream, then the page plays version 2.
            card = page.locator('#segments .card[data-index="2"]')
            await card.locator("input[name=seed]").fill("4242")
            await card.locator(".rerender button").click()
            await expect(page.locator("#status")).to_contain_text("running", timeout=30_000)
            await expect(player).to_have_attribute("data-version", "2", timeout=300_000)
            await expect(page.locator("#status")).to_contain_text("completed")
            assert "/v2/" in await player.get_attribute("src")
            # Its buttons play attempt 2 and attempt 1.
            await expect(page.locator('#segments .card[data-index="2"] .renders button')).to_have_count(2)
            await page.screenshot(path=str(ARTEFACTS / "review-page-v2.png"), full_page=True)
            await browser.close()


async def test_an_edited_timeline_re_imports_as_a_re_render_and_refuses_what_it_cannot_do(finished: dict, tmp_path: Path) -> None:
    """After the review page's re-render (version 2), the exported timeline comes back edited (runs last: it moves the job)."""
    import asyncio

    import httpx

    from reelforge.stack import local_stack

    job = finished["job_id"]
    async with local_stack(tmp_path, names=["gateway"], **finished["overrides"], **TOKENS) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            exported = (await client.get(f"/v1/jobs/{job}/timeline", params={"format": "otio"})).text

            async def post(timeline: otio.schema.Timeline, who: dict = ALICE) -> httpx.Response:
                body = otio.adapters.write_to_string(timeline, adapter_name="otio_json")
                return await client.post(
                    f"/v1/jobs/{job}/timeline", content=body, headers=who | {"Content-Type": "application/json"}
                )

            def edited(change) -> otio.schema.Timeline:
                timeline = read(exported)
                change(list(timeline.video_tracks()[0].find_clips()), timeline.video_tracks()[0])
                return timeline

            # What cannot be done is refused naming the clip, and nothing moves.
            def foreign(clips, track) -> None:
                clips[2].media_reference.target_url = "https://example.com/other.mp4"

            def beyond(clips, track) -> None:  # no handles here: the media is the 6 frames the film uses
                clips[0].source_range = otio.opentime.TimeRange(
                    clips[0].source_range.start_time, otio.opentime.RationalTime(FRAMES + 1, FPS)
                )

            def twice(clips, track) -> None:
                track.append(clips[0].deepcopy())

            for change, clip in ((foreign, "003 close"), (beyond, "001 open"), (twice, "001 open")):
                refused = await post(edited(change))
                assert refused.status_code == 422, refused.text
                assert refused.json()["error"] == "timeline_refused"
                assert refused.json()["details"]["clip"] == clip
            unchanged = await post(read(exported))
            assert unchanged.status_code == 422
            assert "nothing changed" in unchanged.json()["message"]
            # The CLI sends it the same way (`reelforge timeline JOB --import FILE`) and prints the refusal.
            (tmp_path / "same.otio").write_text(exported)
            cli = ["timeline", job, "--import", str(tmp_path / "same.otio"), "--gateway", stack.gateway_url]
            result = await asyncio.to_thread(CliRunner().invoke, app, cli, env={"REELFORGE_API_TOKEN": "tok-alice-secret"})
            assert result.exit_code == 2
            assert "nothing changed" in result.output
            assert (await client.post(f"/v1/jobs/{job}/timeline", content=b"{not json")).status_code == 422
            assert (await post(read(exported), who=BOB)).status_code == 404  # not bob's job

            # A prompt edited in a clip's metadata: exactly that shot is re-rendered, the rest stays.
            def new_prompt(clips, track) -> None:
                clips[2].metadata["reelforge"]["prompt"] = "stands up and leaves"

            before = (await client.get(f"/v1/jobs/{job}")).json()
            answer = await post(edited(new_prompt))
            assert answer.status_code == 202, answer.text
            after = answer.json()
            moved = {n: s["attempt"] for n, s in after["segments"].items() if s["attempt"] != before["segments"][n]["attempt"]}
            assert moved == {"3": before["segments"]["3"]["attempt"] + 1}
            assert after["segments"]["3"]["stage"] == "queued"
            assert after["status"] == "running"


async def test_a_derived_rendition_is_made_from_the_film_once_and_refusals_name_the_field(finished: dict, tmp_path: Path) -> None:
    import asyncio

    import httpx

    from reelforge.stack import local_stack
    from reelforge_shared.bus import Bus
    from reelforge_shared.jobs import Ledger

    job = finished["job_id"]
    base = f"/v1/jobs/{job}/films/1/renditions"
    async with local_stack(tmp_path, names=["gateway", "encoder"], **finished["overrides"], **TOKENS) as stack:
        bus = await Bus.connect(stack.settings)
        try:

            def owned_by_alice(record) -> None:
                record.owner = "alice"
                record.record("test.owner")

            await (await Ledger.open(bus)).update(job, owned_by_alice)
        finally:
            await bus.close()
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            asked = await client.post(base, json={"kind": "speed", "factor": 2})
            assert asked.status_code == 202, asked.text
            view = asked.json()
            assert (view["status"], view["url"]) == ("pending", None)
            for _ in range(600):  # the encoder makes it from the stored film
                view = (await client.get(view["status_url"])).json()
                if view["status"] != "pending":
                    break
                await asyncio.sleep(0.1)
            assert view["status"] == "ready", view
            fast = await client.get(view["url"], headers={})
            (tmp_path / "fast.mp4").write_bytes(fast.content)
            assert probe(tmp_path / "fast.mp4").duration_s == pytest.approx(
                len(STORYBOARD["segments"]) * FRAMES / FPS / 2, abs=0.2
            )
            again = await client.post(base, json={"factor": 2.0, "kind": "speed"})  # the same rendition: made once
            assert (again.status_code, again.json()["id"]) == (200, view["id"])
            assert [r["id"] for r in (await client.get(base)).json()] == [view["id"]]

            # Bounds and what the film cannot give: a 422 naming the field; another token's job and a missing version.
            for body, field in (
                ({"kind": "speed", "factor": 5}, "factor"),
                ({"kind": "loop", "times": 0}, "times"),
                ({"kind": "trim", "start_s": 1, "end_s": 99}, "end_s"),
                ({"kind": "frames", "fps": 1, "quality": 3}, "quality"),
                ({"kind": "morph"}, "body"),
            ):
                refused = await client.post(base, json=body)
                assert refused.status_code == 422, body
                assert field in refused.json()["details"]["fields"][0]["field"], refused.json()
            assert (await client.post(base, json={"kind": "loop", "times": 2}, headers=BOB)).status_code == 404
            assert (await client.get(view["status_url"], headers=BOB)).status_code == 404
            assert (await client.post(f"/v1/jobs/{job}/films/7/renditions", json={"kind": "loop", "times": 2})).status_code == 409
            assert (await client.get(f"{base}/{'0' * 16}")).status_code == 404
