"""Grading: the media guide's grading presets and lighting normalisation toward the storyboard's colour temperature,
as ffmpeg filters. The colour science (light estimate, transfer curves) is :mod:`reelforge_shared.colour`.

Normalisation reads a segment's light from its frames under the grey-world assumption (a scene
averages to neutral grey, so the mean colour is the colour of the light), turns that into a
correlated colour temperature with McCamy's formula, and multiplies the channels by the ratio of
the target's blackbody colour to the estimated one. Only the blue-orange axis is corrected: a
green field keeps its green, where a full grey-world balance would turn it magenta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelforge_shared.colour import LUMA_RGB, cct_of_linear_rgb, light_linear_rgb

# The media guide's COLOR_GRADES; a temperature below 6500 K (neutral in sRGB) warms the picture, above cools it.
GRADES: dict[str, dict[str, float]] = {
    "action": {"contrast": 1.3, "saturation": 1.2, "temperature": 6500, "gamma": 1.1},
    "romantic": {"contrast": 0.9, "saturation": 0.8, "temperature": 4500, "gamma": 1.0},
    "horror": {"contrast": 1.5, "saturation": 0.7, "temperature": 7000, "gamma": 0.9},
    "documentary": {"contrast": 1.0, "saturation": 0.9, "temperature": 5600, "gamma": 1.0},
}
MAX_GAIN = 3.0  # tungsten (3200 K) to daylight needs about 2.8x on blue; more than 3x is a wrong estimate, not a light


@dataclass(frozen=True, slots=True)
class Normalisation:
    """What normalisation found and does: estimated light, target, per-channel gains in linear light."""

    estimated_k: float
    target_k: float
    gains: tuple[float, float, float]

    def filter_args(self) -> dict[str, str]:
        """lutrgb curves (r, g, b) applying each gain in linear light: decode sRGB, scale, encode again (exact per pixel)."""

        def curve(gain: float) -> str:
            lin = f"if(lte(val/255,0.04045),val/255/12.92,pow((val/255+0.055)/1.055,2.4))*{gain}"
            enc = f"if(lte({lin},0.0031308),12.92*{lin},1.055*pow({lin},1/2.4)-0.055)"
            return f"clip(255*{enc},0,255)"

        r, g, b = self.gains
        return {"r": curve(r), "g": curve(g), "b": curve(b)}


def normalisation(light_rgb: np.ndarray, target_k: float) -> Normalisation:
    """Gains that move a segment lit by ``light_rgb`` (its grey-world linear RGB) to ``target_k``, keeping its luminance."""
    estimated = float(np.clip(cct_of_linear_rgb(light_rgb), 1667, 25000))
    gains = light_linear_rgb(target_k) / light_linear_rgb(estimated)
    gains *= float(LUMA_RGB @ light_rgb) / float(LUMA_RGB @ (light_rgb * gains))  # same luminance as before
    gains = np.clip(gains, 1 / MAX_GAIN, MAX_GAIN)
    r, g, b = (round(float(x), 5) for x in gains)
    return Normalisation(estimated, float(target_k), (r, g, b))


def grade_filters(name: str) -> list[tuple[str, dict[str, float]]]:
    """ffmpeg filters of a grading preset: eq (contrast, saturation, gamma), then colortemperature."""
    grade = GRADES[name]
    return [
        ("eq", {"contrast": grade["contrast"], "saturation": grade["saturation"], "gamma": grade["gamma"]}),
        ("colortemperature", {"temperature": grade["temperature"], "pl": 1.0}),  # pl=1: change the hue, keep the lightness
    ]
