"""Handles with a frame-count rule: a model whose clips are ``step * k + 1`` frames (Wan 2.x, HunyuanVideo 1.5: 4;
LTX-2: 8) renders the smallest total from ``frames + 2 x handles`` that keeps the rule in every clip; the middle the film
uses stays the storyboard's frames, the handles are what is left (never shorter than asked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge_encoder.handles import segment_span
from reelforge_generator.config import GeneratorSettings
from reelforge_generator.frame_rule import clip_lengths, fit_handles
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.renderer import FrameRenderer
from reelforge_generator.strategy import ModelContext
from reelforge_generator.transformer_video import TransformerTextToVideo
from reelforge_shared.events import RenderSpec, SegmentRequested
from reelforge_shared.settings import CommonSettings
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import encoded_handles, parse_storyboard


def _clips(clip_frames: int) -> TransformerTextToVideo:
    """Wan's strategy without a pipeline: its clip windows are all the rule needs."""
    settings = GeneratorSettings(clip_frames=clip_frames)
    return TransformerTextToVideo(ModelContext(pipe=None, settings=settings, defaults={}, model_path=""))


def _board(frames: int, fps: float, handles_s: float) -> dict:
    return {"output": {"handles_s": handles_s}, "segments": [{"id": "a", "prompt": "a tree", "frames": frames, "fps": fps}]}


@pytest.mark.parametrize(
    ("frames", "fps", "handles_s", "step", "clip_frames", "total", "clips"),
    [
        (48, 16, 0.5, 4, 81, 65, [65]),  # Wan: 48 + 2 x 8 = 64 -> 65 (4 x 16 + 1); handles 8 + 9
        (150, 16, 0.5, 4, 81, 167, [81, 81, 5]),  # two whole clips and 4 frames -> 5: each clip 4k + 1
        (24, 24, 0.5, 8, 121, 49, [49]),  # LTX-2: 24 + 2 x 12 = 48 -> 49 (8 x 6 + 1)
        (49, 24, 1.0, 8, 121, 97, [97]),  # already 8k + 1: as asked
    ],
)
def test_handles_are_fitted_to_the_model_frame_rule_keeping_the_middle(
    frames: int, fps: float, handles_s: float, step: int, clip_frames: int, total: int, clips: list[int]
) -> None:
    board = parse_storyboard(_board(frames, fps, handles_s))
    asked = render_spec(board, 1)
    handle = round(handles_s * fps)
    assert (asked.frames, asked.handles) == (frames + 2 * handle, handle)
    fitted = fit_handles(asked, _clips(clip_frames), step)
    assert fitted.frames == total
    assert clip_lengths(_clips(clip_frames), fitted) == clips
    assert all((c - 1) % step == 0 for c in clips)
    # The encoder keeps exactly the storyboard's frames in the middle; the handles are as long as asked or a little longer.
    span = segment_span(board, board.segments[0], fitted.frames, fps)
    assert span.used == frames
    assert (span.head + span.used + span.tail, span.tail - span.head) == (total, (total - frames) % 2)
    assert 0 <= span.head - handle < step
    assert encoded_handles(board, board.segments[0], fitted.frames) == (span.head, span.tail)  # the timeline's trim


def test_without_handles_or_a_rule_the_spec_is_rendered_as_asked() -> None:
    spec = render_spec(parse_storyboard(_board(48, 16, 0)), 1)
    assert fit_handles(spec, _clips(81), 4) == spec  # no handles: the storyboard's frames, whatever the rule
    with_handles = render_spec(parse_storyboard(_board(48, 16, 0.5)), 1)
    assert fit_handles(with_handles, _clips(81), None) == with_handles  # a model without the rule


@pytest.mark.slow  # renders 9 frames with the tiny Wan model
def test_the_tiny_wan_model_renders_handles_fitted_to_its_4k_plus_1_clips(
    model_cache: Path, store: ObjectStore, settings: CommonSettings
) -> None:
    # 4 frames at 4 fps with 0.25 s handles: 4 + 2 x 1 = 6 asked. The tiny Wan's VAE compresses time 4x: a clip of 6
    # frames is rendered as 9 and cut, 3 frames thrown away; fitted, all 9 are kept, the handles 2 and 3 frames.
    board = parse_storyboard({**_board(4, 4, 0.25), "output": {"width": 128, "height": 64, "handles_s": 0.25}})
    wan = GeneratorSettings(model_cache_dir=str(model_cache), model="reelforge/tiny-wan", steps=1, clip_frames=9)
    renderer = FrameRenderer(wan)
    deps = GeneratorDeps(store=store, bucket=settings.work_bucket, renderer=renderer)
    spec: RenderSpec = render_spec(board, 1)
    assert (spec.frames, spec.handles) == (6, 1)
    [generated] = handle(SegmentRequested(job_id="j-wan-handles", index=1, segment_id="a", spec=spec), deps)
    assert renderer.frame_step == 4
    assert generated.frame_count == 9
    assert len(store.list_keys(settings.work_bucket, Keys.frames("j-wan-handles", 1))) == 9
    assert renderer.last_run.batches == [9]  # one call of 4 x 2 + 1 frames, every frame kept
    span = segment_span(board, board.segments[0], generated.frame_count, generated.fps)
    assert (span.head, span.used, span.tail) == (2, 4, 3)
