"""Things tests build over and over: storyboards, the first event of a segment, a frame renderer on the tiny model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelforge_shared.events import RenderSpec, SegmentRequested

if TYPE_CHECKING:  # the generator loads torch and diffusers: imported only by the tests that render
    from reelforge_generator.renderer import FrameRenderer

HERO = {"description": "a man in a blue shirt", "seed": 1000}

# Two shots of one character with a dissolve, as a user writes it (YAML): `reelforge run` and the deploy checks.
TWO_SHOTS_YAML = """
title: {title}
output: {{width: 256, height: 144}}
characters:
  hero: {{description: a man in a blue shirt, seed: 1000}}
segments:
  - {{id: one, prompt: walks, characters: [hero], frames: 3, fps: 3}}
  - {{id: two, prompt: sits, characters: [hero], frames: 3, fps: 3, transition: {{type: dissolve, duration: 0.5}}}}
"""


def two_shots_yaml(title: str = "Two shots") -> str:
    return TWO_SHOTS_YAML.format(title=title)


def segment_request(index: int = 1, job_id: str = "j-test") -> SegmentRequested:
    """A minimal `segment.requested` (two 64x64 frames), for tests of the runner and the envelopes."""
    spec = RenderSpec(prompt="p", seed=1, frames=2, fps=3, width=64, height=64)
    return SegmentRequested(job_id=job_id, index=index, segment_id=f"s{index}", spec=spec)


def make_renderer(
    model_cache: Path,
    *,
    setup: bool = False,
    gpu: Any = None,
    clock: Any = None,
    **settings: Any,
) -> FrameRenderer:
    """A FrameRenderer on the tiny test model (settings override GeneratorSettings); `clock` is a FakeClock-like object
    with `sleep` and `now`; `setup=True` loads the model at once."""
    from reelforge_generator.config import GeneratorSettings
    from reelforge_generator.renderer import FrameRenderer

    timing: dict[str, Callable[..., Any]] = {}
    if clock is not None:
        timing = {"sleep": clock.sleep, "clock": lambda: clock.now}
    made = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache), **settings), gpu=gpu, **timing)
    if setup:
        made.setup()
    return made
