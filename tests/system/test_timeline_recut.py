"""Re-import of an editor's cut (issue 19 point 3): a timeline trimmed, reordered, with a clip removed or with an earlier
attempt swapped in becomes a new film version assembled from the stored media, nothing rendered.

One tiny film with handles (three shots of 6 frames at 6 fps, 3 handle frames at each end, a dissolve into the last)
is made on the real services, its second shot is re-rendered once (so it has an earlier attempt), and then four
edited timelines, each from that version's export, are re-imported in turn.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
import opentimelineio as otio
import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from reelforge.cli import app
from reelforge.stack import local_stack
from reelforge_gateway.timeline.export import read
from reelforge_shared.media import probe
from reelforge_shared.storage import Keys, ObjectStore
from support.polling import frames_rendered, poll_job

pytestmark = pytest.mark.slow  # a film through every service, one re-render, then four films joined from its media

TOKENS = {"api_tokens": "alice:tok-alice-secret", "rate_limit_per_min": 10_000}  # the test polls the job
ALICE = {"Authorization": "Bearer tok-alice-secret"}
FPS, FRAMES, HANDLE, DISSOLVE = 6, 6, 3, 3
BOARD = {
    "title": "Recut",
    "output": {"width": 64, "height": 36, "handles_s": 0.5},
    "segments": [
        {"id": "open", "prompt": "walks into the field", "frames": FRAMES, "fps": FPS},
        {"id": "turn", "prompt": "looks at the sky", "frames": FRAMES, "fps": FPS},
        {
            "id": "close",
            "prompt": "sits down",
            "frames": FRAMES,
            "fps": FPS,
            "transition": {"type": "dissolve", "duration": DISSOLVE / FPS},
        },
    ],
}


def _generated() -> float:
    """segment.generated events handled by the services of this process (the encoder and the job ledger)."""
    return sum(
        s.value
        for m in REGISTRY.collect()
        if m.name == "reelforge_events_handled"
        for s in m.samples
        if s.name.endswith("_total") and s.labels.get("event") == "SegmentGenerated"
    )


def _range(start: int, frames: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, FPS), otio.opentime.RationalTime(frames, FPS))


def _film_frames(store: ObjectStore, bucket: str, job: str, version: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return probe(store.get_file(bucket, Keys.film(job, version), Path(tmp, "film.mp4"))).frame_count


async def _finished(client: httpx.AsyncClient, store: ObjectStore, bucket: str, job: str, version: int) -> dict:
    """The job once film version ``version`` is delivered: its report.json is waited on in S3 first, then the job read.

    Not by reading GET /v1/jobs/{id} all along: each read opens watchers on the job store, and a few hundred over the
    minutes a film takes here met the server's 'maximum consumers limit reached' (err_code 10026)."""
    for _ in range(2400):
        if await asyncio.to_thread(store.exists, bucket, Keys.report(job, version)):
            break
        await asyncio.sleep(0.25)

    def done(body: dict) -> bool:
        return body["status"] == "completed" and body["film_version"] == version

    return await poll_job(client, job, done, attempts=240, every_s=0.25)


def trimmed(track: otio.schema.Track) -> None:
    """Shot 1 extended 2 frames into its head handle and cut 1 frame short; shot 3 cut to 4 frames."""
    clips = list(track.find_clips())
    clips[0].source_range = _range(HANDLE - 2, FRAMES + 1)
    clips[2].source_range = _range(HANDLE, 4)


def reordered(track: otio.schema.Track) -> None:
    """Shots 1 and 2 change places (the dissolve into shot 3 stays)."""
    first = track[0]
    track.remove(first)
    track.insert(1, first.deepcopy())


def removed(track: otio.schema.Track) -> None:
    track.remove(track[0])


CASES = [
    # (edit, shots in film order, their source ranges in media frames, film frames)
    (trimmed, [1, 2, 3], [(1, 8), (3, 9), (3, 7)], 7 + 6 + 4),
    (reordered, [2, 1, 3], [(3, 9)] * 3, 18),
    (removed, [2, 3], [(3, 9)] * 2, 12),
]


async def test_trimmed_reordered_removed_and_earlier_attempt_timelines_are_new_versions_with_nothing_rendered(
    overrides, store: ObjectStore, tmp_path: Path
) -> None:
    bucket = overrides["work_bucket"]
    async with local_stack(tmp_path / "services", **overrides, steps=2, qa_max_attempts=1, **TOKENS) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, headers=ALICE) as client:
            job = (await client.post("/v1/jobs", json=BOARD)).json()["job_id"]
            await _finished(client, store, bucket, job, 1)
            assert (await client.post(f"/v1/jobs/{job}/segments/2/rerender", json={"seed": 4242})).status_code == 202
            await _finished(client, store, bucket, job, 2)
            exported = (await client.get(f"/v1/jobs/{job}/timeline", params={"format": "otio"})).text
            assert _film_frames(store, bucket, job, 2) == 3 * FRAMES

            def earlier_attempt(track: otio.schema.Track) -> None:
                """Shot 2's attempt 1, lifted from its disabled alternate track onto V1 in place of attempt 2."""
                alternate = next(
                    c for c in read(exported).video_tracks()[1].find_clips() if c.metadata["reelforge"]["index"] == 2
                )
                track[track.index(list(track.find_clips())[1])] = alternate.deepcopy()

            cases = [*CASES, (earlier_attempt, [1, 2, 3], [(3, 9)] * 3, 18)]
            version = 2
            for edit, shots, ranges, frames in cases:
                timeline = read(exported)
                edit(timeline.video_tracks()[0])
                rendered, generated = frames_rendered(), _generated()
                body = otio.adapters.write_to_string(timeline, adapter_name="otio_json")
                if edit is earlier_attempt:  # through the CLI: `reelforge timeline JOB --import FILE`
                    (tmp_path / "edited.otio").write_text(body)
                    cli = ["timeline", job, "--import", str(tmp_path / "edited.otio"), "--gateway", stack.gateway_url]
                    env = {"REELFORGE_API_TOKEN": "tok-alice-secret"}
                    result = await asyncio.to_thread(CliRunner().invoke, app, cli, env=env)
                    assert result.exit_code == 0, result.output
                    assert f"film version {version + 1} follows" in result.output
                    assert "nothing rendered" in result.output
                else:
                    answer = await client.post(f"/v1/jobs/{job}/timeline", content=body)
                    assert answer.status_code == 202, (edit.__name__, answer.text)
                version += 1
                done = await _finished(client, store, bucket, job, version)
                assert frames_rendered() == rendered, edit.__name__
                assert _generated() == generated, edit.__name__
                assert _film_frames(store, bucket, job, version) == frames, edit.__name__
                assert all(s["stage"] == "delivered" for s in done["segments"].values())
                assert [(e["index"], e["source_in"], e["source_out"]) for e in done["cut"]] == [
                    (n, *r) for n, r in zip(shots, ranges, strict=True)
                ]  # the job says its cut too

                # The job report names the version's cut, and film QA checked the shots in its order.
                report = store.get_json(bucket, Keys.report(job, version))
                assert report["film"]["frame_count"] == frames
                assert report["film"]["fps"] == pytest.approx(FPS)  # as long as its frames: the joins' times are whole
                # Joined from the renders: every frame copied or (a cut inside a GOP, under a transition) encoded again.
                counted = store.get_json(bucket, Keys.film_meta(job, version))["cut"]
                assert counted["copied_frames"] + counted["encoded_frames"] == frames
                if edit is reordered:  # turn 3..9 and close 4..9 copied; open (cut inside a GOP) and the dissolve encoded
                    assert (counted["copied_frames"], counted["encoded_frames"]) == (11, 7)
                assert [c["index"] for c in report["cut"]] == shots, edit.__name__
                assert [(c["source_in"], c["source_out"]) for c in report["cut"]] == ranges, edit.__name__
                ids = [BOARD["segments"][n - 1]["id"] for n in shots]
                assert [s["segment_id"] for s in report["film_qa"]["segments"]] == ids, edit.__name__
                html = store.get_bytes(bucket, Keys.report_html(job, version)).decode()
                assert "Cut of this version" in html

                # The timeline exported for the new version is that cut.
                again = read((await client.get(f"/v1/jobs/{job}/timeline", params={"format": "otio"})).text)
                clips = list(again.video_tracks()[0].find_clips())
                assert [c.metadata["reelforge"]["index"] for c in clips] == shots, edit.__name__
                got = [(c.source_range.start_time.to_frames(), c.source_range.end_time_exclusive().to_frames()) for c in clips]
                assert got == ranges, (edit.__name__, [(c.source_range, c.media_reference.available_range) for c in clips])
                assert again.metadata["reelforge"]["frame_count"] == frames

            # The last one swapped in attempt 1 of shot 2: the report's segment 2 is that attempt.
            assert report["segments"][1]["attempt"] == 1
            assert [c["attempt"] for c in report["cut"]] == [1, 1, 1]

            # Impossible cuts stay refused naming the clip: beyond the media, a clip of no shot of this job.
            def beyond(track: otio.schema.Track) -> None:
                list(track.find_clips())[1].source_range = _range(0, FRAMES + 2 * HANDLE + 1)

            def stranger(track: otio.schema.Track) -> None:
                list(track.find_clips())[0].metadata["reelforge"]["index"] = 9

            for edit, clip in ((beyond, "002 turn"), (stranger, "001 open")):
                timeline = read(exported)
                edit(timeline.video_tracks()[0])
                body = otio.adapters.write_to_string(timeline, adapter_name="otio_json")
                refused = await client.post(f"/v1/jobs/{job}/timeline", content=body)
                assert refused.status_code == 422, refused.text
                assert refused.json()["details"]["clip"] == clip
