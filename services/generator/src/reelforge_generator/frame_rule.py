"""Frame-count rules with handles (``output.handles_s``): the handles are fitted to the model's clip lengths.

Video transformers whose VAE compresses time (Wan 2.x and HunyuanVideo 1.5: ``4k + 1`` frames, LTX-2: ``8k + 1``)
render a clip of ``step * k + 1`` frames; a clip of another length is rendered at the next such length and cut, so the
frames past it are rendered and thrown away. A segment with handles asks for ``frames + 2 x handles``; the generator
renders instead the smallest total from there whose every clip keeps the rule: the frames the model renders anyway
(at most ``step - 1`` more), kept. The middle stays exactly ``frames``; the handles are the rest, split evenly
(the tail one frame longer when it is odd): never shorter than ``handles_s``, as close to it as the rule allows. A
segment without handles is rendered as asked (its frame count is the storyboard's).
"""

from __future__ import annotations

from reelforge_generator.strategy import Strategy
from reelforge_shared.events import RenderSpec

SEARCH_CLIPS = 2  # how far the search looks past the asked total: two clips' worth always holds a clip of any length


def clip_lengths(strategy: Strategy, spec: RenderSpec) -> list[int]:
    """The lengths of the model calls that render every frame of ``spec`` (its clip windows, as the renderer cuts them)."""
    remaining, lengths = list(range(spec.frames)), []
    while remaining:
        window, kept = strategy.next_unit(spec, remaining, 1)
        lengths.append(len(window))
        remaining = [i for i in remaining if i not in set(kept)]
    return lengths


def keeps_rule(strategy: Strategy, spec: RenderSpec, step: int) -> bool:
    """Whether every clip of ``spec`` is ``step * k + 1`` frames long: nothing rendered is thrown away."""
    return all((length - 1) % step == 0 for length in clip_lengths(strategy, spec))


def fit_handles(spec: RenderSpec, strategy: Strategy, step: int | None) -> RenderSpec:
    """``spec`` with its total frames raised to keep the rule of a model whose clips are ``step * k + 1`` frames;
    unchanged without handles, for a model without such a rule, or where no total near the asked one keeps it."""
    if not spec.handles or not step or step == 1 or not strategy.clip_based:
        return spec
    reach = spec.frames + SEARCH_CLIPS * max(step, getattr(strategy, "clip_frames", step))
    for total in range(spec.frames, reach + 1):
        if keeps_rule(strategy, spec.model_copy(update={"frames": total}), step):
            return spec.model_copy(update={"frames": total})
    return spec
