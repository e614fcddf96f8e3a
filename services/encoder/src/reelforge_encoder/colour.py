"""Colour: seed 000's grading presets and lighting normalisation toward the storyboard's colour temperature.

Normalisation reads a segment's light from its frames under the grey-world assumption (a scene
averages to neutral grey, so the mean colour is the colour of the light), turns that into a
correlated colour temperature with McCamy's formula, and multiplies the channels by the ratio of
the target's blackbody colour to the estimated one. Only the blue-orange axis is corrected: a
green field keeps its green, where a full grey-world balance would turn it magenta.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# Seed 000's COLOR_GRADES; a temperature below 6500 K (neutral in sRGB) warms the picture, above cools it.
GRADES: dict[str, dict[str, float]] = {
    "action": {"contrast": 1.3, "saturation": 1.2, "temperature": 6500, "gamma": 1.1},
    "romantic": {"contrast": 0.9, "saturation": 0.8, "temperature": 4500, "gamma": 1.0},
    "horror": {"contrast": 1.5, "saturation": 0.7, "temperature": 7000, "gamma": 0.9},
    "documentary": {"contrast": 1.0, "saturation": 0.9, "temperature": 5600, "gamma": 1.0},
}
MAX_GAIN = 3.0  # tungsten (3200 K) to daylight needs about 2.8x on blue; more than 3x is a wrong estimate, not a light
_XYZ_FROM_RGB = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])  # sRGB, D65
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_LUMA = _XYZ_FROM_RGB[1]


def linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in 0..1 to linear light."""
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """Linear sRGB of a blackbody at ``kelvin`` (Kim et al.'s Planckian-locus fit, 1667-25000 K), luminance 1."""
    t = float(np.clip(kelvin, 1667, 25000))
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
    rgb = _RGB_FROM_XYZ @ np.array([x / y, 1.0, (1 - x - y) / y])
    return np.clip(rgb, 1e-4, None)


def estimate_cct(mean_linear_rgb: Iterable[float]) -> float:
    """Correlated colour temperature of a linear sRGB colour (McCamy 1992; good to about 2 % from 2000 to 12500 K)."""
    x_, y_, z_ = _XYZ_FROM_RGB @ np.asarray(list(mean_linear_rgb), dtype=float)
    x, y = x_ / (x_ + y_ + z_), y_ / (x_ + y_ + z_)
    n = (x - 0.3320) / (0.1858 - y)
    return float(449 * n**3 + 3525 * n**2 + 6823.3 * n + 5520.33)


def mean_linear_rgb(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Mean linear RGB over RGB uint8 frames (grey world: the colour of the light)."""
    means = [linear(f.astype(np.float64) / 255.0).reshape(-1, 3).mean(axis=0) for f in frames]
    if not means:
        raise ValueError("no frames to measure")
    return np.mean(means, axis=0)


@dataclass(frozen=True, slots=True)
class Normalisation:
    """What normalisation found and does: estimated light, target, per-channel gains in linear light."""

    estimated_k: float
    target_k: float
    gains: tuple[float, float, float]

    def filter_args(self) -> dict[str, float]:
        """colorchannelmixer arguments: it works on gamma-encoded values, where a linear gain g is g^(1/2.2)."""
        r, g, b = (round(v ** (1 / 2.2), 5) for v in self.gains)
        return {"rr": r, "gg": g, "bb": b}


def normalisation(mean_rgb: np.ndarray, target_k: float) -> Normalisation:
    """Gains that move a segment lit at its estimated temperature to ``target_k``, keeping its luminance."""
    estimated = float(np.clip(estimate_cct(mean_rgb), 1667, 25000))
    gains = kelvin_rgb(target_k) / kelvin_rgb(estimated)
    gains *= float(_LUMA @ mean_rgb) / float(_LUMA @ (mean_rgb * gains))  # same luminance as before
    gains = np.clip(gains, 1 / MAX_GAIN, MAX_GAIN)
    return Normalisation(estimated, float(target_k), tuple(round(float(g), 5) for g in gains))


def grade_filters(name: str) -> list[tuple[str, dict[str, float]]]:
    """ffmpeg filters of a grading preset: eq (contrast, saturation, gamma), then colortemperature."""
    grade = GRADES[name]
    return [
        ("eq", {"contrast": grade["contrast"], "saturation": grade["saturation"], "gamma": grade["gamma"]}),
        ("colortemperature", {"temperature": grade["temperature"], "pl": 1.0}),  # pl=1: change the hue, keep the lightness
    ]
