"""Shots that continue from the last frame (issue 18 point 5): a chain renders in order, from the changed shot onward.

The real generator service (the tiny image-to-video model, whose keyframes come from the tiny text-to-image one)
on a real bus and S3 server; the submissions are the gateway's ``submit_job``. Segment QA is not running: the test
keeps each rendered shot in the owner's store as segment QA does when a shot passes (``keep_passed_shot``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from reelforge.stack import local_stack
from reelforge_gateway.submit import submit_job
from reelforge_generator.config import GeneratorSettings
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.bus import Bus
from reelforge_shared.chain import hold, regenerated, release, superseded
from reelforge_shared.events import ModelInfo, SegmentEncoded, SegmentGenerated, SegmentRequested
from reelforge_shared.shots import keep_passed_shot
from reelforge_shared.specs import segment_requests
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from support.media import pixels

MODEL = "reelforge/tiny-svd"
FAST = {"steps": 2, "clip_frames": 2, "generation_width": 64, "allow_test_model": True, "model": MODEL}
PROMPTS = ["a red door opens", "a hall behind it", "a stair goes up", "a garden elsewhere"]


def _board(prompts: list[str]) -> dict:
    segments = [{"id": f"s{i}", "prompt": p, "frames": 2, "fps": 2} for i, p in enumerate(prompts, start=1)]
    for seg in segments[1:3]:
        seg["start_from"] = "previous"  # s2 continues s1, s3 continues s2; s4 stands alone
    return {"title": "A chain", "output": {"width": 128, "height": 72}, "segments": segments}


def _keep(store: ObjectStore, bucket: str, generated: SegmentGenerated) -> None:
    """What segment QA does for a shot that passed its gates."""
    model = ModelInfo(name=MODEL, pipeline="StableVideoDiffusionPipeline", random_weights=True)
    encoded = SegmentEncoded.follow(
        generated, video_key="unused.mp4", frame_count=2, fps=2, width=128, height=72, duration_s=1.0, model=model
    )
    keep_passed_shot(store, bucket, encoded, passed=True)


@pytest.mark.slow  # four films of four tiny image-to-video segments: 60-130 s at load 15-19 on two cores
async def test_a_chain_renders_after_its_first_shot_and_again_from_the_changed_shot_onward(
    overrides, event_log, tmp_path: Path
) -> None:
    async with local_stack(tmp_path / "state", names=["generator"], **overrides, **FAST) as stack:
        bus = await Bus.connect(stack.settings)
        store, bucket = ObjectStore.from_settings(stack.settings), stack.settings.work_bucket

        async def film(prompts: list[str]) -> tuple[str, dict[int, SegmentGenerated], dict[int, SegmentRequested]]:
            submitted = await submit_job(
                parse_storyboard(_board(prompts)), bus=bus, store=store, bucket=bucket, owner="ana", reuse=True
            )
            job = submitted.job_id

            def of(cls: type) -> dict:
                return {e.index: e for e in event_log.of(cls) if e.job_id == job}

            await event_log.wait_for(lambda: len(of(SegmentGenerated)) == 4, timeout=300)
            generated = of(SegmentGenerated)
            for event in generated.values():
                _keep(store, bucket, event)
            return job, generated, of(SegmentRequested)

        first, generated, requested = await film(PROMPTS)
        assert all(e.reused_from is None for e in generated.values())
        order = [(type(e).__name__, e.index) for e in event_log.events if e.job_id == first and hasattr(e, "index")]
        # s2 is requested only once s1's frames exist, s3 once s2's; s1 and s4 are requested at once (in parallel)
        assert order.index(("SegmentGenerated", 1)) < order.index(("SegmentRequested", 2))
        assert order.index(("SegmentGenerated", 2)) < order.index(("SegmentRequested", 3))
        assert order.index(("SegmentRequested", 4)) < order.index(("SegmentGenerated", 1))
        for n in (2, 3):
            start = requested[n].spec.start_frame
            assert start is not None
            assert start.frame_key == Keys.frame(first, n - 1, 1)
            assert start.shot_key == generated[n - 1].shot_key
        assert requested[1].spec.start_frame is None
        assert requested[4].spec.start_frame is None

        # s2's first frame is rendered from s1's last frame: exactly what the model makes of that image, and not
        # what it makes from its own keyframe (the pixel statistics of the start frame).
        last = tmp_path / "s1-last.png"
        last.write_bytes(store.get_bytes(bucket, Keys.frame(first, 1, 1)))
        renderer = FrameRenderer(GeneratorSettings(model_cache_dir=overrides["model_cache_dir"], **FAST))
        renderer.setup()
        spec = requested[2].spec.model_copy(update={"start_frame": None})
        from_last = dict(renderer.render(spec.model_copy(update={"reference_images": [str(last)]}), [0, 1]))
        from_keyframe = dict(renderer.render(spec, [0, 1]))
        rendered = pixels(store.get_bytes(bucket, Keys.frame(first, 2, 0)))
        assert np.abs(rendered - pixels(from_last[0])).max() == 0
        assert np.abs(rendered - pixels(from_keyframe[0])).mean() > 1.0

        # The chain's middle shot changed: s1 and s4 are reused, s2 renders and so does s3, which continues from it.
        second, generated, _ = await film([PROMPTS[0], "a hall with a lamp", *PROMPTS[2:]])
        assert sorted(n for n, e in generated.items() if e.reused_from is None) == [2, 3]

        # Only the last shot changed: the three before it are reused, only s3 renders.
        _, generated, _ = await film([*PROMPTS[:2], "a stair goes down", PROMPTS[3]])
        assert sorted(n for n, e in generated.items() if e.reused_from is None) == [3]
        assert generated[2].reused_from is not None
        assert generated[2].reused_from.job_id == first

        # Unchanged: the whole chain is reused, link by link, and nothing renders.
        _, generated, _ = await film(PROMPTS)
        assert all(e.reused_from is not None for e in generated.values())
        await bus.close()


def test_an_attempt_of_a_continued_shot_is_dropped_unrendered_when_a_later_one_is_asked_for(
    overrides, store: ObjectStore, captured_logs
) -> None:
    """QA regenerated the hall (its attempt 2, from the door's first last frame) just before the door's regeneration let
    it go again as attempt 3 from the new frame: attempts 1 and 2 still on the bus are not rendered (acked with nothing
    to publish, logged and counted); attempt 3 is the latest and renders, as does a shot that continues from nothing."""
    bucket, job = overrides["work_bucket"], "j-generator-superseded"
    board = parse_storyboard(_board(PROMPTS))
    store.put_json(bucket, Keys.storyboard(job), board.model_dump(mode="json"))
    [waiting] = segment_requests(board, job, 2)
    hold(store, bucket, waiting)
    model = ModelInfo(name=MODEL, pipeline="StableVideoDiffusionPipeline", random_weights=True)

    def door(attempt: int) -> SegmentGenerated:
        return SegmentGenerated(
            job_id=job, index=1, segment_id="s1", attempt=attempt, frames_prefix=Keys.frames(job, 1, attempt),
            frame_count=2, fps=2, width=128, height=72, model=model, shot_key=f"{attempt}" * 64,
        )  # fmt: skip

    [first] = release(store, bucket, door(1))
    assert isinstance(first, SegmentRequested)
    spec = first.spec.model_copy(update={"seed": 99})
    qa = regenerated(store, bucket, SegmentRequested.retry(first, 2, spec=spec))
    assert qa is not None
    [last] = release(store, bucket, door(2))
    assert isinstance(last, SegmentRequested)
    assert last.attempt == 3

    deps = GeneratorDeps(store=store, bucket=bucket, renderer=FrameRenderer(GeneratorSettings(**overrides, **FAST)))
    before = REGISTRY.get_sample_value("reelforge_generator_superseded_total") or 0.0
    assert handle(qa, deps) == []
    assert handle(first, deps) == []
    assert REGISTRY.get_sample_value("reelforge_generator_superseded_total") == before + 2
    assert "generator.superseded" in captured_logs.getvalue()
    assert not store.exists(bucket, Keys.segment_generation(job, 2, 2))  # nothing rendered
    assert deps.renderer.model is None  # not even the model loaded
    assert superseded(store, bucket, last) is None  # the latest attempt renders
    [standalone] = segment_requests(board, job, 4)
    assert superseded(store, bucket, standalone) is None
