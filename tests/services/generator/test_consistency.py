"""Consistency in per-frame mode and for image-to-video: shared prompt, reference images, keyframe chaining."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reelforge_generator.config import GeneratorSettings
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.errors import InvalidInput, PermanentError
from reelforge_shared.events import RenderSpec
from reelforge_tiny import MARKER, resolve_model
from support.factories import make_renderer
from support.media import pixels

pytestmark = pytest.mark.slow  # renders the tiny SD, SVD, Wan and HunyuanVideo models many times: minutes on two cores

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


_renderer = partial(make_renderer, setup=True, steps=3, batch_size=2)  # loaded, small and fast


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("refs") / "hero.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_prompt_is_encoded_once_per_segment_and_shared_by_every_batch(model_cache: Path) -> None:
    renderer = _renderer(model_cache)
    calls: list[int] = []
    hook = renderer.pipe.text_encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        list(renderer.render(SPEC.model_copy(update={"frames": 5}), [0, 1, 2, 3, 4]))
    finally:
        hook.remove()
    assert renderer.last_run.batches == [2, 2, 1]
    assert calls == [1, 1]  # the prompt and the negative prompt, once each


def test_reference_image_steers_the_frames_through_the_ip_adapter(model_cache: Path, reference: str) -> None:
    renderer = _renderer(model_cache)
    plain = dict(renderer.render(SPEC, [0, 1]))
    assert renderer.pipe.unet.encoder_hid_proj is None  # loaded only when a segment brings a reference image
    with_reference = dict(renderer.render(SPEC.model_copy(update={"reference_images": [reference]}), [0, 1]))
    assert renderer.pipe.unet.encoder_hid_proj is not None
    assert all(np.abs(pixels(with_reference[i]) - pixels(plain[i])).mean() > 1 for i in (0, 1))
    assert dict(renderer.render(SPEC, [0, 1])) == plain  # a segment without one: the adapter weighs nothing


def test_concurrent_segments_on_one_renderer_each_render_with_their_own_ip_adapter_scale(
    model_cache: Path, reference: str
) -> None:
    """A segment with a reference (scale 0.6) and one without (scale 0) at once: each gets the images it gets alone."""
    renderer = _renderer(model_cache)
    specs = {"referenced": SPEC.model_copy(update={"reference_images": [reference]}), "plain": SPEC}
    alone = {name: dict(renderer.render(spec, [0, 1, 2])) for name, spec in specs.items()}
    assert alone["referenced"] != alone["plain"]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            futures = {name: pool.submit(lambda s: dict(renderer.render(s, [0, 1, 2])), spec) for name, spec in specs.items()}
            assert {name: f.result() for name, f in futures.items()} == alone


def test_unreadable_reference_image_is_invalid_input_naming_it(model_cache: Path, tmp_path: Path) -> None:
    renderer = _renderer(model_cache)
    missing = str(tmp_path / "nobody.png")
    with pytest.raises(InvalidInput, match=r"reference_images\[0\] .*nobody.png"):
        list(renderer.render(SPEC.model_copy(update={"reference_images": [missing]}), [0]))


def test_img2img_chaining_ties_frames_to_the_keyframe_and_stays_resumable(model_cache: Path) -> None:
    plain = dict(_renderer(model_cache).render(SPEC, [0, 1, 2, 3]))
    chained_renderer = _renderer(model_cache, img2img_strength=0.5)
    chained = dict(chained_renderer.render(SPEC, [0, 1, 2, 3]))
    assert np.abs(pixels(chained[0]) - pixels(plain[0])).max() <= 2  # the keyframe is the plain frame 0

    def distance_to_keyframe(frames: dict[int, bytes]) -> float:
        return float(np.mean([np.abs(pixels(frames[i]) - pixels(frames[0])).mean() for i in (1, 2, 3)]))

    assert distance_to_keyframe(chained) < 0.8 * distance_to_keyframe(plain)
    resumed = dict(_renderer(model_cache, img2img_strength=0.5).render(SPEC, [3]))  # a fresh worker: keyframe rendered again
    assert np.abs(pixels(resumed[3]) - pixels(chained[3])).max() <= 2


# How far the reference image moves frame 0 at least (mean 0..255 levels). Random weights: the tiny Wan's
# transformer moves the picture little from its noise, so any image it reads changes the frames a little.
@pytest.mark.parametrize(
    ("model", "moved"),
    [("reelforge/tiny-svd", 1.0), ("reelforge/tiny-wan-i2v", 0.005), ("reelforge/tiny-hunyuanvideo15-i2v", 0.005)],
)
def test_image_to_video_conditions_on_the_reference_image_else_on_a_keyframe(
    model: str, moved: float, model_cache: Path, reference: str
) -> None:
    i2v = GeneratorSettings(model_cache_dir=str(model_cache), model=model, steps=2, clip_frames=2)
    renderer = FrameRenderer(i2v)
    renderer.setup()
    keyframed = dict(renderer.render(SPEC, [0, 1]))
    assert list(renderer._keyframers) == ["reelforge/tiny-sd"]  # the tiny image-to-video models name their keyframe model
    referenced = dict(renderer.render(SPEC.model_copy(update={"reference_images": [reference]}), [0, 1]))
    assert np.abs(pixels(referenced[0]) - pixels(keyframed[0])).mean() > moved
    assert dict(renderer.render(SPEC, [0, 1])) == keyframed  # deterministic, noise augmentation included


def test_image_to_video_without_reference_or_keyframe_model_says_what_to_set(model_cache: Path, tmp_path: Path) -> None:
    model = tmp_path / "svd"
    shutil.copytree(resolve_model("reelforge/tiny-svd", model_cache), model)
    marker = json.loads((model / MARKER).read_text())
    (model / MARKER).write_text(json.dumps({k: v for k, v in marker.items() if k != "keyframe_model"}))
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache), model=str(model), steps=2, clip_frames=2))
    renderer.setup()
    with pytest.raises(PermanentError, match="reference_image or set REELFORGE_KEYFRAME_MODEL"):
        list(renderer.render(SPEC, [0]))


def test_speed_levers_keep_the_images(model_cache: Path) -> None:
    plain = dict(_renderer(model_cache).render(SPEC, [0, 1, 2]))
    fast = make_renderer(
        model_cache,
        setup=True,
        steps=3,
        batch_size=2,
        fuse_qkv="on",
        channels_last="on",
        vae_decode="sliced",
        sdpa_backend="math",
    )
    assert fast.levers == ["fused-qkv", "channels-last", "sliced-vae", "sdpa-math"]
    assert fast.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    frames = dict(fast.render(SPEC, [0, 1, 2]))
    assert max(np.abs(pixels(frames[i]) - pixels(plain[i])).max() for i in plain) <= 2
