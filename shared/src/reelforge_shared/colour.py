"""The colour of light, one estimator for the whole pipeline.

The encoder normalises every segment toward the storyboard's colour temperature and QA judges
light continuity; both read the light here, so what the encoder aims at is what QA measures.

Convention: a picture graded for sRGB white (D65, about 6500 K) showing a neutral scene reads
about 6500 K; a scene lit by warmer light than the grade expects reads lower. The estimate assumes
the scene averages to grey (grey-world): the mean colour of the unclipped, non-black pixels in
linear light is the colour of the light, turned into a correlated colour temperature (McCamy).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# sRGB primaries, D65 white (IEC 61966-2-1).
RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
LUMA = RGB_TO_XYZ[1]


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in 0..1 to linear light."""
    v = np.asarray(values, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def planckian_xy(kelvin: float) -> tuple[float, float]:
    """Chromaticity of a black body (Kim et al. 2002 cubic fit, 1667..25000 K)."""
    t = float(np.clip(kelvin, 1667.0, 25000.0))
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def light_rgb(kelvin: float) -> np.ndarray:
    """Linear sRGB of black-body light at ``kelvin`` in a D65 grade, at unit luminance (never zero)."""
    x, y = planckian_xy(kelvin)
    rgb = np.clip(XYZ_TO_RGB @ np.array([x / y, 1.0, (1 - x - y) / y]), 1e-4, None)
    return rgb / float(LUMA @ rgb)


def mccamy_cct(x: float, y: float) -> float:
    """Correlated colour temperature of a chromaticity (McCamy 1992; within a few K from 2800 to 6500 K)."""
    n = (x - 0.3320) / (0.1858 - y)
    return float(np.clip(449.0 * n**3 + 3525.0 * n**2 + 6823.3 * n + 5520.33, 1000.0, 25000.0))


def cct(linear_rgb: Iterable[float]) -> float:
    """Correlated colour temperature of a linear sRGB colour (6504 K for black, which has none)."""
    xyz = RGB_TO_XYZ @ np.asarray(list(linear_rgb), np.float64)
    total = float(xyz.sum())
    return mccamy_cct(float(xyz[0] / total), float(xyz[1] / total)) if total > 0 else 6504.0


def grey_world(rgb_frames: Iterable[np.ndarray]) -> np.ndarray:
    """Mean linear RGB of the pixels that are neither clipped nor near black: the colour of the light.

    Frames are RGB uint8 arrays (H, W, 3). A pixel with a clipped channel has lost its colour; a dark
    pixel (every channel near black) never had one. A pixel with only one dark channel stays: under
    warm light that channel is blue, and leaving it out would read the light as cooler than it is.
    """
    sums, count = np.zeros(3), 0
    for frame in rgb_frames:
        pixels = frame.reshape(-1, 3)
        keep = (pixels.max(axis=1) < 250) & (pixels.max(axis=1) > 8)
        linear = srgb_to_linear(pixels[keep] / 255.0)
        sums += linear.sum(axis=0)
        count += len(linear)
    return sums / count if count else np.full(3, 0.18)
