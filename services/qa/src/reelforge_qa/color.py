"""Colour of the light in QA's terms (BGR frames): colour temperature, mired, grey-world white balance.

The estimator itself is :mod:`reelforge_shared.colour`, shared with the encoder's normalisation.

Convention: a picture graded for sRGB white (D65, about 6500 K) that shows a neutral scene reads
about 6500 K; a scene lit by warmer light than the grade expects reads lower (3200 K tungsten
in a daylight grade reads about 3200 K). The estimate assumes that the scene averages to grey
(grey-world): the mean colour of the unclipped pixels, in linear light, is the colour of the
light. A scene dominated by one colour (a green field) biases it; comparing segments of the
same location cancels that bias, which is why light continuity compares segments with each
other rather than with a target.
"""

from __future__ import annotations

import numpy as np

from reelforge_shared.colour import (  # noqa: F401 - re-exported: QA's modules and tests read them here
    LUMA,
    RGB_TO_XYZ,
    XYZ_TO_RGB,
    cct,
    grey_world,
    light_rgb,
    linear_to_srgb,
    mccamy_cct,
    planckian_xy,
    srgb_to_linear,
)


def mean_linear_rgb(bgr_frames: list[np.ndarray]) -> np.ndarray:
    """Grey-world light of BGR frames (OpenCV's order)."""
    return grey_world(f[..., ::-1] for f in bgr_frames)


def colour_temperature(bgr_frames: list[np.ndarray]) -> float:
    return cct(mean_linear_rgb(bgr_frames))


def mired(kelvin: float) -> float:
    """Micro reciprocal degrees: equal steps look equally large (a full CTO gel is about +130 mired)."""
    return 1e6 / kelvin


def white_balanced(bgr: np.ndarray, light: np.ndarray) -> np.ndarray:
    """The frame as if lit by neutral light of 18 % mean luminance: colour compared without the light."""
    linear = srgb_to_linear(bgr[..., ::-1] / 255.0)
    gains = 0.18 / np.maximum(light, 1e-4)
    balanced = linear_to_srgb(linear * gains)
    return (balanced[..., ::-1] * 255.0 + 0.5).astype(np.uint8)
