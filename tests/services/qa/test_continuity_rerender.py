"""Continuity drives regeneration (issue 11, point 2), on a real S3 server: film QA of a film whose s5 wears a red shirt
asks for s5 again (segment.rerender_requested, the API's re-render path) with a new seed and delivers this version
flagged; the next version's report shows the hero's score before and after. A light fault and a location fault do the
same, each with one re-render steered by a frame of the best-matching segment, which the gateway's path (a real ledger)
hands to the generator (the tiny SD model with its IP-Adapter) as a work-bucket key."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelforge_generator import handler as generator
from reelforge_generator.config import GeneratorSettings
from reelforge_generator.renderer import FrameRenderer
from reelforge_qa.calibration import CASES, CLEAN, FPS, FRAMES, build
from reelforge_qa.film_checks import FilmThresholds
from reelforge_qa.film_regenerate import middle_frame_png
from reelforge_qa.gates import Thresholds
from reelforge_qa.handler import QaDeps, handle_film
from reelforge_qa.job_report import JobReport
from reelforge_qa.scores import Expected, score_video
from reelforge_qa.synthetic import HEIGHT, WIDTH
from reelforge_shared.bus import Bus
from reelforge_shared.events import FilmChecked, FilmEncoded, SegmentRerenderRequested
from reelforge_shared.jobs import JobRecord, Ledger, SegmentRecord, plan_rerender
from reelforge_shared.settings import CommonSettings
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from support.media import pixels

pytestmark = pytest.mark.slow  # encodes and checks a five-segment film per case, then renders again

BOARD = {
    "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1000}},
    "locations": {"field": {"description": "a field", "seed": 5000}, "barn": {"description": "a barn", "seed": 6000}},
    "output": {"width": WIDTH, "height": HEIGHT},
    "segments": [
        {
            "id": p.segment_id,
            "prompt": "walks",
            "characters": list(p.characters),
            "location": p.location,
            "frames": FRAMES,
            "fps": FPS,
            "transition": {"type": p.transition, "duration": p.transition_s},
        }
        for p in CLEAN
    ],
}


def _store_version(
    store: ObjectStore, bucket: str, job: str, folder: Path, attempts: dict[str, int], stills: bool = False
) -> FilmEncoded:
    """The segments as delivered (the film event names their attempts) and the film, as the services would have left
    them (``stills``: the encoder's)."""
    videos, film = build(next(c for c in CASES if c.name == folder.name), folder)
    for n, video in enumerate(videos, start=1):
        attempt = attempts.get(video.segment_id, 1)
        key = Keys.segment_video(job, n, attempt)
        store.put_file(bucket, key, video.path, "video/mp4")
        if stills:
            still = io.BytesIO()
            Image.open(io.BytesIO(middle_frame_png(video.path))).save(still, format="JPEG")
            store.put_bytes(bucket, Keys.segment_thumbnail(key), still.getvalue(), "image/jpeg")
        qa = score_video(video.path, Expected(WIDTH, HEIGHT, FPS, FRAMES), Thresholds())
        store.put_json(bucket, Keys.segment_qa(job, n, attempt), qa.model_dump(mode="json"))
        store.put_json(bucket, Keys.segment_checked(job, n, attempt), {"model": {"name": "tiny"}, "duration_s": FRAMES / FPS})
    version = max(attempts.values(), default=1)
    film_key = Keys.film(job, version)
    store.put_file(bucket, film_key, film, "video/mp4")
    return FilmEncoded(
        job_id=job,
        version=version,
        film_key=film_key,
        duration_s=len(CLEAN) * FRAMES / FPS,
        frame_count=len(CLEAN) * FRAMES,
        fps=FPS,
        width=WIDTH,
        height=HEIGHT,
        attempts=[attempts.get(v.segment_id, 1) for v in videos],
    )


def test_a_segment_breaking_continuity_is_rendered_again(store: ObjectStore, settings: CommonSettings, tmp_path: Path) -> None:
    job, bucket = "j-continuity", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), BOARD)
    deps = QaDeps(store=store, bucket=bucket, thresholds=Thresholds(), max_attempts=2, film_thresholds=FilmThresholds())

    events = handle_film(_store_version(store, bucket, job, tmp_path / "shirt", {}), deps)
    [redo] = [e for e in events if isinstance(e, SegmentRerenderRequested)]
    [checked] = [e for e in events if isinstance(e, FilmChecked)]
    assert (redo.index, redo.job_id) == (5, job)
    assert redo.reason.startswith("continuity: character:hero")
    assert redo.seed == render_spec(parse_storyboard(BOARD), 5, 2).seed  # a new seed: the second attempt's
    assert redo.reference_images == [Keys.continuity_reference(job, 5, 2)]  # a frame of a hero segment in the field
    assert redo.reason.endswith("reference: a frame of s1")
    assert not checked.passed  # this version is delivered, flagged
    assert handle_film(_store_version(store, bucket, job, tmp_path / "shirt", {}), deps)[0].event_id == redo.event_id  # once

    # The re-rendered s5 (attempt 2) is clean: the next film version's report shows the hero before and after.
    handle_film(_store_version(store, bucket, job, tmp_path / "clean", {"s5": 2}), deps)
    report = JobReport.model_validate(store.get_json(bucket, Keys.report(job, 2)))
    [regen] = report.regenerations
    assert (regen.segment_id, regen.check, regen.requested_in_version) == ("s5", "character:hero", 1)
    assert regen.before is not None
    assert regen.after is not None
    assert regen.before < 0.85 <= regen.after
    assert regen.segment_before["character:hero"] < 0.85 <= (regen.segment_after["character:hero"] or 0)
    assert "Regenerated for continuity" in store.get_bytes(bucket, Keys.report_html(job, 2)).decode()


@pytest.mark.parametrize(
    ("case", "index", "check", "stills"), [("tungsten", 2, "light:field", True), ("location", 5, "location:field", False)]
)
async def test_a_light_or_location_fault_is_rendered_again_steered_by_a_frame_of_the_best_matching_segment(
    case: str,
    index: int,
    check: str,
    stills: bool,
    store: ObjectStore,
    settings: CommonSettings,
    model_cache: Path,
    tmp_path: Path,
) -> None:
    job, bucket = f"j-continuity-{case}", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), BOARD)
    deps = QaDeps(store=store, bucket=bucket, thresholds=Thresholds(), max_attempts=2, film_thresholds=FilmThresholds())

    [redo] = [
        e
        for e in handle_film(_store_version(store, bucket, job, tmp_path / case, {}, stills), deps)
        if isinstance(e, SegmentRerenderRequested)
    ]  # exactly one re-render, for the faulty segment
    assert redo.index == index
    assert f"{check} " in redo.reason
    v1 = JobReport.model_validate(store.get_json(bucket, Keys.report(job, 1)))
    [asked] = v1.regenerations
    assert asked.reference_segment_id in {"s1", "s2", "s3", "s5"} - {f"s{index}"}  # the same location, field
    [key] = redo.reference_images
    if stills:  # the encoder's still of the best-matching segment, as it is
        assert key == Keys.segment_thumbnail(Keys.segment_video(job, int(asked.reference_segment_id[1:])))
    else:  # none: its middle frame, decoded by QA and stored for the new attempt
        assert key == Keys.continuity_reference(job, index, 2)
    reference = Image.open(io.BytesIO(store.get_bytes(bucket, key)))
    assert (reference.format, reference.size) == ("JPEG" if stills else "PNG", (WIDTH, HEIGHT))
    assert (asked.segment_id, asked.reference_key, asked.seed) == (f"s{index}", key, redo.seed)
    assert asked.segment_before[check] < 0.85
    assert asked.segment_after == {}

    # The gateway's path: the ledger moves the segment to attempt 2 and the spec carries the reference after the cast's own.
    bus = await Bus.connect(settings)
    try:
        ledger = await Ledger.open(bus)
        segments = {n: SegmentRecord(index=n, id=p.segment_id, stage="delivered") for n, p in enumerate(CLEAN, start=1)}
        await ledger.create(JobRecord(job_id=job, status="completed", segment_count=len(CLEAN), segments=segments))
        record, request = await plan_rerender(
            ledger, store, bucket, job, redo.index, seed=redo.seed, by=redo.reason, references=tuple(redo.reference_images)
        )
    finally:
        await bus.close()
    assert request is not None
    assert (request.attempt, request.spec.seed, request.spec.reference_images) == (2, redo.seed, [key])
    assert record.segments[index].attempt == 2
    assert "reference" in record.changes[-1].detail

    # The generator reads the reference from the work bucket and weighs it through the tiny model's IP-Adapter.
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache), steps=2, batch_size=2))
    renderer.setup()
    request = request.model_copy(update={"spec": request.spec.model_copy(update={"frames": 2})})
    generator.handle(request, generator.GeneratorDeps(store, bucket, renderer))
    assert renderer.pipe.unet.encoder_hid_proj is not None  # loaded only for a segment that brings a reference
    steered = store.get_bytes(bucket, Keys.frame(job, index, 0, 2))
    plain = dict(renderer.render(request.spec.model_copy(update={"reference_images": []}), [0]))[0]
    assert np.abs(pixels(steered) - pixels(plain)).mean() > 1  # the reference changed the picture

    # The re-rendered segment is clean: the next film version's report shows before and after, and asks for nothing.
    v2_events = handle_film(_store_version(store, bucket, job, tmp_path / "clean", {f"s{index}": 2}), deps)
    assert not [e for e in v2_events if isinstance(e, SegmentRerenderRequested)]
    [regen] = JobReport.model_validate(store.get_json(bucket, Keys.report(job, 2))).regenerations
    assert regen.before is not None
    assert regen.after is not None
    assert regen.before < 0.85 <= regen.after
    assert regen.segment_before[check] < 0.85 <= (regen.segment_after[check] or 0)
    html = store.get_bytes(bucket, Keys.report_html(job, 2)).decode()
    assert "Regenerated for continuity" in html
    assert key in html
    assert re.search(f"Regenerated for continuity in film version 1: [^<]*{check} ", html)  # on the segment's card too
    assert re.search(r"<td>sharpness</td><td>[\d.]+</td><td>0.2</td><td>(ok|FAILED)</td><td>worst frame \d+", html)  # filled in
