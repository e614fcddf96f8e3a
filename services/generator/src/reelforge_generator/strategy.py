"""The one interface every model family's strategy implements, and what the renderer hands them.

A strategy knows how one kind of pipeline turns a :class:`RenderSpec` into frames: what a segment's
calls share (``prepare``), which frames one call renders (``next_unit``) and the call itself
(``run``). The renderer owns everything around it (guards, timing, PNG encoding). Strategies
keep no per-job state on the shared pipeline: what a job needs travels in ``conditioning``. Where
diffusers offers no per-call argument for a setting and it must be set on the pipeline (the
IP-Adapter scale lives in the UNet's attention processors), the strategy sets it and calls the
pipeline under the renderer's ``pipe_lock``, so two jobs on one renderer never see each other's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from PIL import Image

from reelforge_generator.config import GeneratorSettings
from reelforge_generator.fallback import RenderPlan
from reelforge_shared.events import RenderSpec

# (model, spec, plan) -> the segment's frame 0 rendered by that text-to-image model; image-to-video conditions on it.
Keyframer = Callable[[str, RenderSpec, RenderPlan], Image.Image]


@dataclass(frozen=True, slots=True)
class ModelContext:
    """What a strategy is built from: the loaded pipeline, the settings and the model's own defaults."""

    pipe: Any  # a diffusers pipeline: untyped, its parts depend on the family
    settings: GeneratorSettings
    defaults: dict
    model_path: str
    keyframer: Keyframer | None = None
    pipe_lock: threading.Lock = field(default_factory=threading.Lock)  # the renderer's: held to set a pipeline setting and call


@dataclass(slots=True)
class Clip:
    """What one pipeline call made: frames (n, 3, H, W) in 0..1, and sound when the model makes sound."""

    frames: torch.Tensor
    audio: torch.Tensor | None = None  # (channels, samples) floats in -1..1
    sample_rate: int | None = None


class Knobs:
    """What every strategy builds on: the model's denoising steps and guidance, a segment's own where it sets them
    (the video endpoints' ``steps``/``guidance``), and the defaults of the :class:`Strategy` members a family may
    change (no sound, sizes derived from the pipeline, no sizes of its own).

    A segment's values are read per call from its spec, never written onto the strategy: the strategy and its
    pipeline are shared by every segment the worker renders.
    """

    steps: int
    guidance: float
    makes_sound: bool = False
    size_multiple: int | None = None

    def own_size(self, spec: RenderSpec) -> tuple[int, int] | None:
        return None

    def steps_for(self, spec: RenderSpec) -> int:
        return spec.steps if spec.steps is not None else self.steps

    def guidance_for(self, spec: RenderSpec) -> float:
        return spec.guidance if spec.guidance is not None else self.guidance


class Strategy(Protocol):
    """Every member the renderer and the handler use, read-only; :class:`Knobs` gives the defaults."""

    @property
    def kind(self) -> str:
        """ "text-to-image", "text-to-video" or "image-to-video"."""

    @property
    def clip_based(self) -> bool:
        """Frames denoised jointly in clips (video models), or one image per frame."""

    @property
    def steps(self) -> int:
        """The model's denoising steps (a segment may set its own: :meth:`Knobs.steps_for`)."""

    @property
    def guidance(self) -> float:
        """The model's guidance scale (a segment may set its own: :meth:`Knobs.guidance_for`)."""

    @property
    def makes_sound(self) -> bool:
        """The model makes the segment's sound with its frames (LTX-2): the handler stores the track."""

    @property
    def size_multiple(self) -> int | None:
        """Generation sizes are multiples of this; None: the renderer derives it from the pipeline."""

    def own_size(self, spec: RenderSpec) -> tuple[int, int] | None:
        """The size this model renders at for the output's aspect, where it has sizes of its own; None: the renderer's."""

    def prepare(self, spec: RenderSpec, plan: RenderPlan) -> dict[str, object]:
        """What every call of the segment shares (prompt embeddings, a conditioning image), computed once."""

    def next_unit(self, spec: RenderSpec, remaining: list[int], batch: int) -> tuple[list[int], list[int]]:
        """The frames the next call renders, and those of them that are kept."""

    def run(self, spec: RenderSpec, conditioning: dict[str, object], frames: list[int], plan: RenderPlan) -> Clip:
        """One pipeline call."""
