"""Graceful degradation after an out-of-memory error: a smaller batch first, then a lower resolution.

A smaller batch gives the same images (up to float rounding); a lower resolution does not, so it
is the last resort, announced in ``SegmentGenerated.degraded`` and applied to the whole segment so
that its frames keep one size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

RESOLUTION_STEPS = (0.75, 0.5)  # then give up: below half size a real model's output is no longer the shot asked for


@dataclass(frozen=True, slots=True)
class RenderPlan:
    """How a segment is rendered: generation size and frames (or clips) per pipeline call."""

    width: int
    height: int
    batch: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def scaled(size: tuple[int, int], scale: float, multiple: int) -> tuple[int, int]:
    """``size`` times ``scale``, rounded to what the UNet can halve down to its bottom."""
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in size)  # type: ignore[return-value]


def after_out_of_memory(plan: RenderPlan, full_size: tuple[int, int], multiple: int) -> tuple[RenderPlan, str] | None:
    """The next plan to try and what it gives up, or ``None`` when nothing smaller is left."""
    if plan.batch > 1:
        smaller = plan.batch // 2
        return replace(plan, batch=smaller), f"out of memory at batch {plan.batch}: batch {smaller}"
    for scale in RESOLUTION_STEPS:
        width, height = scaled(full_size, scale, multiple)
        if width * height < plan.width * plan.height:
            return (
                replace(plan, width=width, height=height),
                f"out of memory at batch 1, {plan.width}x{plan.height}: resolution lowered to {width}x{height}",
            )
    return None
