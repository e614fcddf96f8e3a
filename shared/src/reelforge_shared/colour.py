"""Colour, one module for the whole pipeline: the colour of light, white balance, transfer curves.

Channel order: **RGB everywhere**. Every function that takes or returns pixels or colours says so in
its name and arguments (``rgb``, ``linear_rgb``, ``rgb_frames``). OpenCV code (QA) holds BGR frames;
it converts at the edge with :func:`bgr_to_rgb` / :func:`rgb_to_bgr` before and after calling here.
The transfer curves (:func:`srgb_to_linear`, :func:`linear_to_srgb`) work per value, in any order.

The encoder normalises every segment toward the storyboard's colour temperature and QA judges
light continuity; both read the light here, so what the encoder aims at is what QA measures.

Convention: a picture graded for sRGB white (D65, about 6500 K) showing a neutral scene reads
about 6500 K; a scene lit by warmer light than the grade expects reads lower (3200 K tungsten in
a daylight grade reads about 3200 K). The estimate assumes the scene averages to grey (grey-world):
the mean colour of the unclipped, non-black pixels in linear light is the colour of the light, turned
into a correlated colour temperature (McCamy). A scene dominated by one colour (a green field)
biases it; comparing segments of the same location cancels that bias.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# sRGB primaries, D65 white (IEC 61966-2-1); rows and columns in RGB order.
RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
LUMA_RGB = RGB_TO_XYZ[1]  # relative luminance weights of linear R, G, B


def bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """An OpenCV BGR image (..., 3) as RGB (a contiguous copy, ready for OpenCV or PIL)."""
    return np.ascontiguousarray(np.asarray(bgr)[..., ::-1])


def rgb_to_bgr(rgb: np.ndarray) -> np.ndarray:
    """An RGB image (..., 3) as OpenCV's BGR (a contiguous copy, ready for OpenCV)."""
    return np.ascontiguousarray(np.asarray(rgb)[..., ::-1])


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in 0..1 to linear light (per value: any channel order)."""
    v = np.asarray(srgb, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light to sRGB-encoded values in 0..1 (per value: any channel order)."""
    v = np.clip(np.asarray(linear, np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def luma_of_linear_rgb(linear_rgb: Iterable[float]) -> float:
    """Relative luminance (Y) of a linear sRGB colour."""
    return float(LUMA_RGB @ np.asarray(list(linear_rgb), np.float64))


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


def light_linear_rgb(kelvin: float) -> np.ndarray:
    """Linear sRGB (R, G, B) of black-body light at ``kelvin`` in a D65 grade, at unit luminance (never zero)."""
    x, y = planckian_xy(kelvin)
    rgb = np.clip(XYZ_TO_RGB @ np.array([x / y, 1.0, (1 - x - y) / y]), 1e-4, None)
    return rgb / float(LUMA_RGB @ rgb)


def mccamy_cct(x: float, y: float) -> float:
    """Correlated colour temperature of a chromaticity (McCamy 1992; within a few K from 2800 to 6500 K)."""
    n = (x - 0.3320) / (0.1858 - y)
    return float(np.clip(449.0 * n**3 + 3525.0 * n**2 + 6823.3 * n + 5520.33, 1000.0, 25000.0))


def cct_of_linear_rgb(linear_rgb: Iterable[float]) -> float:
    """Correlated colour temperature of a linear sRGB colour (6504 K for black, which has none)."""
    xyz = RGB_TO_XYZ @ np.asarray(list(linear_rgb), np.float64)
    total = float(xyz.sum())
    return mccamy_cct(float(xyz[0] / total), float(xyz[1] / total)) if total > 0 else 6504.0


def mired(kelvin: float) -> float:
    """Micro reciprocal degrees: equal steps look equally large (a full CTO gel is about +130 mired)."""
    return 1e6 / kelvin


def grey_world_rgb(rgb_frames: Iterable[np.ndarray]) -> np.ndarray:
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


def colour_temperature_rgb(rgb_frames: Iterable[np.ndarray]) -> float:
    """Correlated colour temperature of the light in RGB uint8 frames (grey-world)."""
    return cct_of_linear_rgb(grey_world_rgb(rgb_frames))


def white_balance_rgb(rgb: np.ndarray, light_rgb: np.ndarray) -> np.ndarray:
    """An RGB uint8 frame as if lit by neutral light of 18 % mean luminance (``light_rgb``: linear RGB of its light)."""
    gains = 0.18 / np.maximum(np.asarray(light_rgb, np.float64), 1e-4)
    balanced = linear_to_srgb(srgb_to_linear(np.asarray(rgb) / 255.0) * gains)
    return (balanced * 255.0 + 0.5).astype(np.uint8)
