"""The generator with the tiny random-weight model: loading, determinism, resume."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from reelforge_generator.config import GeneratorSettings
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.latents import frame_latents
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.events import RenderSpec, SegmentRequested
from reelforge_shared.storage import Keys
from support.media import pixels

SPEC = RenderSpec(
    prompt="a man in a blue shirt in a field",
    negative_prompt="blurry",
    seed=1001,
    character_seeds=[1000],
    location_seed=5000,
    frames=4,
    fps=3,
    width=320,
    height=180,
)


@pytest.fixture(scope="module")
def renderer(model_cache) -> FrameRenderer:
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache), steps=4, batch_size=3))
    renderer.setup()
    return renderer


def test_tiny_model_loads_through_from_pretrained_and_says_what_it_is(renderer: FrameRenderer) -> None:
    assert renderer.model.pipeline == "StableDiffusionPipeline"
    assert renderer.model.random_weights
    assert renderer.generation_size(SPEC) == (128, 72)


@pytest.mark.slow  # renders the same segment twice
def test_same_spec_gives_the_same_frames(renderer: FrameRenderer) -> None:
    first = dict(renderer.render(SPEC, [0, 1, 2, 3]))
    again = dict(renderer.render(SPEC, [0, 1, 2, 3]))
    assert first == again
    assert len(set(first.values())) == 4  # frames differ from each other


def test_frames_move_rather_than_jump() -> None:
    lat = frame_latents(7, [1000], 5000, (4, 9, 16), list(range(9)), motion=0.35)
    neighbours = [torch.nn.functional.cosine_similarity(lat[i].flatten(), lat[i + 1].flatten(), dim=0) for i in range(8)]
    other = frame_latents(8, [], None, (4, 9, 16), [0], motion=0.35)[0]
    assert min(neighbours) > 0.95 > torch.nn.functional.cosine_similarity(lat[0].flatten(), other.flatten(), dim=0)


def test_cast_and_location_seeds_tie_segments_together() -> None:
    shape = (4, 9, 16)
    a, b = frame_latents(1001, [1000], 5000, shape, [0], 0.35)[0], frame_latents(1004, [1000], 5000, shape, [0], 0.35)[0]
    stranger = frame_latents(1004, [2000], 6000, shape, [0], 0.35)[0]
    cos = torch.nn.functional.cosine_similarity
    assert cos(a.flatten(), b.flatten(), dim=0) > cos(a.flatten(), stranger.flatten(), dim=0) + 0.3


@pytest.mark.slow  # renders a segment, then resumes it
def test_resumed_segment_renders_only_missing_frames(renderer: FrameRenderer, store, settings) -> None:
    deps = GeneratorDeps(store=store, bucket=settings.work_bucket, renderer=renderer)
    event = SegmentRequested(job_id="j-resume", index=2, segment_id="b", spec=SPEC)
    out = handle(event, deps)
    keys = store.list_keys(settings.work_bucket, Keys.frames("j-resume", 2))
    first = {k: store.get_bytes(settings.work_bucket, k) for k in keys}
    assert len(first) == 4
    assert out[0].frame_count == 4
    assert out[0].model.random_weights
    store.remove(settings.work_bucket, Keys.frame("j-resume", 2, 1))
    rendered: list[list[int]] = []
    original = renderer.render

    def spy(spec: RenderSpec, frames: list[int], *args: Any) -> Iterator[tuple[int, bytes]]:
        rendered.append(list(frames))
        return original(spec, frames, *args)

    renderer.render = spy
    try:
        handle(event, deps)
        handle(event, deps)
    finally:
        renderer.render = original
    assert rendered == [[1], []]
    # Alone in its batch the frame goes through different BLAS blockings than in a batch of three:
    # the same image up to float rounding, not the same bytes.
    again = pixels(store.get_bytes(settings.work_bucket, Keys.frame("j-resume", 2, 1)))
    assert np.abs(again - pixels(first[Keys.frame("j-resume", 2, 1)])).max() <= 2
