"""Every supported model family renders a segment end to end: tiny random weights, from_pretrained, frames in S3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reelforge_gateway.prompt_fit import prompt_limit
from reelforge_generator.config import GeneratorSettings
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.errors import InvalidInput, PermanentError
from reelforge_shared.events import RenderSpec, SegmentRequested
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_tiny import resolve_model
from reelforge_tiny.hunyuan import prompt_budget
from support.media import pixels

pytestmark = pytest.mark.slow  # builds and renders every family's tiny model (ten pipelines): minutes on two cores

SPEC = RenderSpec(
    prompt="a man in a blue shirt plants a sapling",
    negative_prompt="blurry",
    seed=1001,
    character_seeds=[1000],
    location_seed=5000,
    frames=3,
    fps=3,
    width=320,
    height=180,
)
FAMILIES = [  # model, pipeline class read from it, how it makes frames
    ("reelforge/tiny-sd", "StableDiffusionPipeline", "text-to-image"),
    ("reelforge/tiny-sdxl", "StableDiffusionXLPipeline", "text-to-image"),
    ("reelforge/tiny-sdxl-turbo", "StableDiffusionXLPipeline", "text-to-image"),
    ("reelforge/tiny-zeroscope", "TextToVideoSDPipeline", "text-to-video"),
    ("reelforge/tiny-animatediff", "AnimateDiffPipeline", "text-to-video"),
    ("reelforge/tiny-svd", "StableVideoDiffusionPipeline", "image-to-video"),
    ("reelforge/tiny-wan", "WanPipeline", "text-to-video"),
    ("reelforge/tiny-wan-i2v", "WanImageToVideoPipeline", "image-to-video"),
    ("reelforge/tiny-hunyuanvideo15", "HunyuanVideo15Pipeline", "text-to-video"),
    ("reelforge/tiny-hunyuanvideo15-i2v", "HunyuanVideo15ImageToVideoPipeline", "image-to-video"),
]


@pytest.mark.parametrize(("model", "pipeline", "kind"), FAMILIES, ids=[f[0].split("/")[1] for f in FAMILIES])
def test_each_family_renders_a_segment_and_resumes_it(
    model: str,
    pipeline: str,
    kind: str,
    model_cache: Path,
    store: ObjectStore,
    settings: CommonSettings,
) -> None:
    renderer = FrameRenderer(
        GeneratorSettings(model_cache_dir=str(model_cache), model=model, steps=2, batch_size=2, clip_frames=2)
    )
    deps = GeneratorDeps(store=store, bucket=settings.work_bucket, renderer=renderer)
    job = "j-" + model.split("/")[1]
    event = SegmentRequested(job_id=job, index=1, segment_id="a", spec=SPEC)
    [generated] = handle(event, deps)
    assert (generated.model.pipeline, renderer.strategy.kind, generated.model.random_weights) == (pipeline, kind, True)
    assert generated.frame_count == 3
    assert generated.degraded is None
    frames = {i: store.get_bytes(settings.work_bucket, Keys.frame(job, 1, i)) for i in range(3)}
    images = [pixels(frames[i]) for i in range(3)]
    height = 64 if model.startswith("reelforge/tiny-wan") else 72  # Wan's sizes are multiples of 16 (VAE 8x, patch 2)
    assert {img.shape for img in images} == {(height, 128, 3)}
    assert all(img.std() > 1 for img in images)
    assert len(set(frames.values())) == 3  # real pictures (noise), not blanks
    # Resume: frame 1 lost; per-frame models render it alone, video models its whole clip (frames 0-1), and it comes back.
    store.remove(settings.work_bucket, Keys.frame(job, 1, 1))
    handle(event, deps)
    assert renderer.last_run.batches == ([2] if renderer.strategy.clip_based else [1])
    assert np.abs(pixels(store.get_bytes(settings.work_bucket, Keys.frame(job, 1, 1))) - images[1]).max() <= 2


def test_video_model_cuts_a_segment_into_clips_at_fixed_frames(model_cache: Path) -> None:
    animatediff = GeneratorSettings(model_cache_dir=str(model_cache), model="reelforge/tiny-animatediff", steps=2, clip_frames=2)
    renderer = FrameRenderer(animatediff)
    renderer.setup()
    spec = SPEC.model_copy(update={"frames": 5})
    frames = dict(renderer.render(spec, [4, 1]))
    assert sorted(frames) == [1, 4]
    assert renderer.last_run.batches == [2, 1]  # clips 0-1 and 4
    again = dict(renderer.render(spec, [0, 1, 2, 3, 4]))
    assert again[1] == frames[1]
    assert again[4] == frames[4]  # the same clip gives the same frames, whoever asks


def test_a_pipeline_kind_reelforge_does_not_render_is_refused_by_name(model_cache: Path, tmp_path: Path) -> None:
    model = tmp_path / "img2img"
    shutil.copytree(resolve_model("reelforge/tiny-sd", model_cache), model)
    index = json.loads((model / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps(index | {"_class_name": "StableDiffusionImg2ImgPipeline"}))
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache)))
    with pytest.raises(PermanentError, match="StableDiffusionImg2ImgPipeline; supported pipelines: StableDiffusionPipeline"):
        renderer.setup(str(model))


def test_a_model_that_cannot_be_loaded_is_a_permanent_error(model_cache: Path, tmp_path: Path) -> None:
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache)))
    with pytest.raises(PermanentError, match="cannot load model"):
        renderer.setup(str(tmp_path / "no-such-model"))


@pytest.mark.parametrize("model", ["reelforge/tiny-wan", "reelforge/tiny-wan-i2v"])
def test_a_prompt_longer_than_a_t5_encoder_reads_is_refused_naming_field_and_limit(model: str, model_cache: Path) -> None:
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache), model=model, steps=2))
    renderer.setup()
    with pytest.raises(InvalidInput, match=r"segments\[\]\.prompt: 601 tokens, .* at most 512"):
        list(renderer.render(SPEC.model_copy(update={"prompt": "a" * 600}), [0]))
    with pytest.raises(InvalidInput, match=r"style\.negative_prompt: 513 tokens, .* at most 512"):
        list(renderer.render(SPEC.model_copy(update={"negative_prompt": "b" * 512}), [0]))
    list(renderer.render(SPEC.model_copy(update={"prompt": "a" * 511}), [0]))  # 511 and the end token: the whole window
    assert renderer.last_run.prompt.as_dict() == {"prompt": "a" * 511, "prompt_tokens": 511, "prompt_tokens_dropped": 0}


def test_hunyuanvideo15_reads_its_chat_template_window_whole_or_refuses_naming_field_and_limit(model_cache: Path) -> None:
    model = "reelforge/tiny-hunyuanvideo15"
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache), model=model, steps=1, clip_frames=1))
    renderer.setup()
    budget = prompt_budget(renderer.pipe)  # the window after the system message, less the template around the prompt
    assert 0 < budget < renderer.pipe.tokenizer_max_length  # this tokenizer's one token per character
    with pytest.raises(InvalidInput, match=rf"segments\[\]\.prompt: {budget + 1} tokens, .* at most {budget} of it"):
        list(renderer.render(SPEC.model_copy(update={"prompt": "a" * (budget + 1)}), [0]))
    with pytest.raises(InvalidInput, match=r"style\.negative_prompt: .* at most"):
        list(renderer.render(SPEC.model_copy(update={"negative_prompt": "b" * (budget + 1)}), [0]))
    # ByT5 reads the quoted text as 'Text "…". ' in bytes and its end token: 266 for 256 letters.
    with pytest.raises(InvalidInput, match=r"segments\[\]\.prompt: its quoted text is 266 tokens .*ByT5.* at most 256"):
        list(renderer.render(SPEC.model_copy(update={"prompt": f'a sign reads "{"x" * 256}"'}), [0]))
    list(renderer.render(SPEC.model_copy(update={"prompt": "a" * budget}), [0]))  # the whole window, nothing cut
    assert renderer.last_run.prompt.as_dict() == {"prompt": "a" * budget, "prompt_tokens": budget, "prompt_tokens_dropped": 0}
    # The gateway refuses at the same length: the marker states the limit as it counts (the family's template allowance).
    limit = prompt_limit(resolve_model(model, model_cache))
    assert limit is not None
    assert limit.refusal("a" * budget, "p") is None
    assert limit.refusal("a" * (budget + 1), "p")


def test_each_segment_renders_with_its_own_model_else_the_workers(
    model_cache: Path, store: ObjectStore, settings: CommonSettings
) -> None:
    renderer = FrameRenderer(
        GeneratorSettings(model_cache_dir=str(model_cache), model="reelforge/tiny-wan", steps=1, clip_frames=1)
    )
    deps = GeneratorDeps(store=store, bucket=settings.work_bucket, renderer=renderer)
    spec = SPEC.model_copy(update={"frames": 1})
    chosen = ["reelforge/tiny-hunyuanvideo15", None, "reelforge/tiny-hunyuanvideo15"]  # a segment's model, none: the worker's
    used = []
    for index, model in enumerate(chosen, start=1):
        [generated] = handle(
            SegmentRequested(job_id="j-models", index=index, segment_id=str(index), spec=spec, model=model), deps
        )
        frame = pixels(store.get_bytes(settings.work_bucket, Keys.frame("j-models", index, 0)))
        used.append((generated.model.name, generated.model.pipeline, frame.shape[0]))
    hunyuan = ("reelforge/tiny-hunyuanvideo15", "HunyuanVideo15Pipeline", 72)
    assert used == [hunyuan, ("reelforge/tiny-wan", "WanPipeline", 64), hunyuan]


def test_hunyuanvideo15_renders_at_the_segments_guidance_and_leaves_the_shared_guider_alone(model_cache: Path) -> None:
    settings = GeneratorSettings(model_cache_dir=str(model_cache), model="reelforge/tiny-hunyuanvideo15", steps=1, clip_frames=1)
    renderer = FrameRenderer(settings)
    renderer.setup()
    guided = dict(renderer.render(SPEC, [0]))[0]  # the model's guidance: 6
    plain = dict(renderer.render(SPEC.model_copy(update={"guidance": 1.0}), [0]))[0]  # no guidance: one pass per step
    assert guided != plain
    assert dict(renderer.render(SPEC, [0]))[0] == guided
    assert renderer.pipe.guider.guidance_scale == 6.0
    assert renderer.pipe.guider._enabled
