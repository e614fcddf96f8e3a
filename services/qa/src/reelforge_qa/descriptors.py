"""Classical descriptors of a segment, and how alike two segments are by each, in [0, 1].

All colour descriptors are taken after grey-world white balance (:func:`reelforge_shared.colour.white_balance_rgb`),
so a change of light is reported once, as light, and not again by every character and location.

- palette: the share of the picture in each CIELAB cell of about 10 units (10 x 12 x 12 cells),
  averaged over the sampled frames;
- presence: which colours of one segment are missing from the other. A colour (a cell and its
  neighbours, so a colour on a cell edge stays one colour) that fills at least 0.5 % of one
  segment must fill at least a quarter as much of the other (a close-up and a wide shot of the
  same person differ by that much); the mass that fails is the distance, and 10 % of the picture
  changing colour scores 0. This is the character check: a shirt that turns from blue to red
  makes the blue vanish and the red appear, whatever the framing;
- colour: the earth mover's distance between the palettes in CIELAB units (the location check:
  the same place shows the same colours in about the same amounts);
- structure: SSIM of the segments' median frames at 64x36 after undoing the best shift between
  them (the layout: horizon, walls, light, seen from a camera that may have panned or tilted);
- features: the share of ORB keypoints of one segment that find a distinct match in the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from reelforge_shared.colour import (
    bgr_to_rgb,
    cct_of_linear_rgb,
    grey_world_rgb,
    luma_of_linear_rgb,
    mired,
    rgb_to_bgr,
    white_balance_rgb,
)

L_BINS, AB_BINS, AB_RANGE = 10, 12, 60.0  # CIELAB cells of about 10 x 10 x 10: a step of 10 is a clearly different colour
MIN_MASS = 0.005
PRESENCE_SCALE = 0.10
EMD_SCALE = 40.0
LAYOUT = (64, 36)  # enough for the layout (horizon, walls) and for registering a pan or tilt
FEATURE_SHARE = 0.25  # a quarter of keypoints with a distinct match: the same place (unrelated pictures: < 5 %)
ORB = cv2.ORB.create(nfeatures=500)
MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)


@dataclass(slots=True)
class Descriptor:
    """One segment, described."""

    kelvin: float
    mired: float
    key: float  # mean luminance, linear (0..1): the exposure of the light
    palette: np.ndarray
    layout: np.ndarray  # LAYOUT-sized grey median frame
    orb: np.ndarray | None  # ORB descriptors of the middle sampled frame
    embedding: np.ndarray | None = None


def palette(bgr: np.ndarray) -> np.ndarray:
    """Share of the picture in each CIELAB cell (L 0..100, a and b -60..60 clamped), shape (L, a, b)."""
    lab = cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab).reshape(-1, 3)
    li = np.clip((lab[:, 0] * L_BINS / 100.0).astype(np.int32), 0, L_BINS - 1)
    ai = np.clip(((lab[:, 1] + AB_RANGE) * AB_BINS / (2 * AB_RANGE)).astype(np.int32), 0, AB_BINS - 1)
    bi = np.clip(((lab[:, 2] + AB_RANGE) * AB_BINS / (2 * AB_RANGE)).astype(np.int32), 0, AB_BINS - 1)
    hist = np.bincount((li * AB_BINS + ai) * AB_BINS + bi, minlength=L_BINS * AB_BINS * AB_BINS).astype(np.float64)
    return (hist / max(1.0, float(hist.sum()))).reshape(L_BINS, AB_BINS, AB_BINS)


def _near(hist: np.ndarray) -> np.ndarray:
    """Mass within one cell in every direction: a colour on a cell edge is still the same colour."""
    padded = np.pad(hist, 1)
    out = np.zeros_like(hist)
    for dl in range(3):
        for da in range(3):
            for db in range(3):
                out += padded[dl : dl + hist.shape[0], da : da + hist.shape[1], db : db + hist.shape[2]]
    return out


def describe(colour_frames: list[np.ndarray]) -> Descriptor:
    """Descriptor of a segment from its sampled BGR frames."""
    rgb_frames = [bgr_to_rgb(f) for f in colour_frames]
    light = grey_world_rgb(rgb_frames)
    kelvin = cct_of_linear_rgb(light)  # the same estimate colour_temperature_rgb() makes, without a second pass
    balanced = [rgb_to_bgr(white_balance_rgb(f, light)) for f in rgb_frames]
    hist = np.mean([palette(f) for f in balanced], axis=0)
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in balanced]
    layout = np.median([cv2.resize(g, LAYOUT, interpolation=cv2.INTER_AREA) for g in grey], axis=0).astype(np.uint8)
    _, orb = ORB.detectAndCompute(grey[len(grey) // 2], None)
    key = luma_of_linear_rgb(light)
    return Descriptor(kelvin=kelvin, mired=mired(kelvin), key=key, palette=hist, layout=layout, orb=orb)


def _missing(p: np.ndarray, q: np.ndarray) -> float:
    """Mass of p's colours (neighbourhoods of at least MIN_MASS) that q holds less than a quarter of."""
    p_near, q_near = _near(p), _near(q)
    distinct = (p > 0) & (p_near >= MIN_MASS)
    coverage = np.minimum(1.0, q_near[distinct] / (0.25 * p_near[distinct]))
    return float(np.sum(p[distinct] * (1.0 - coverage)))


def presence(a: Descriptor, b: Descriptor) -> float:
    distance = max(_missing(a.palette, b.palette), _missing(b.palette, a.palette))
    return float(np.clip(1.0 - distance / PRESENCE_SCALE, 0.0, 1.0))


def _signature(hist: np.ndarray, top: int = 48) -> np.ndarray:
    """The ``top`` fullest cells as an EMD signature: weight, L, a, b (cell centres)."""
    flat = hist.reshape(-1)
    idx = np.argsort(flat)[::-1][:top]
    idx = idx[flat[idx] > 0]
    li, rest = np.divmod(idx, AB_BINS * AB_BINS)
    ai, bi = np.divmod(rest, AB_BINS)
    step_l, step_ab = 100.0 / L_BINS, 2 * AB_RANGE / AB_BINS
    return np.column_stack(
        [flat[idx] / flat[idx].sum(), (li + 0.5) * step_l, (ai + 0.5) * step_ab - AB_RANGE, (bi + 0.5) * step_ab - AB_RANGE]
    ).astype(np.float32)


def colour(a: Descriptor, b: Descriptor) -> float:
    """1 - the mean CIELAB distance the colours must move to turn one palette into the other, / 40.

    The earth mover's distance in CIELAB units: 2 is barely visible, 10 a clearly different colour;
    an average shift of 6 (score 0.85) is a different-looking place.
    """
    distance = cv2.EMD(_signature(a.palette), _signature(b.palette), cv2.DIST_L2)[0]
    return float(np.clip(1.0 - distance / EMD_SCALE, 0.0, 1.0))


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # the SSIM paper's constants
    blur = lambda img: cv2.GaussianBlur(img, (7, 7), 1.5)  # noqa: E731 - five uses in one formula
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return float((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))).mean())


ZOOMS = (1.0, 1.2, 1.44)  # a camera zoom between two shots of one place, undone before comparing layouts


def _zoomed(img: np.ndarray, zoom: float) -> np.ndarray:
    """The centre 1/zoom of ``img`` scaled back to its size: what a camera zoomed in by ``zoom`` sees."""
    if zoom == 1.0:
        return img
    h, w = img.shape
    matrix = np.array([[zoom, 0, (1 - zoom) * w / 2], [0, zoom, (1 - zoom) * h / 2]], dtype=np.float32)
    return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _registered_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of the overlap after moving ``y`` back onto ``x`` by the sub-pixel shift phase correlation finds.

    At 64x36 a camera moved by one pixel of the 320-pixel frame is a fifth of a layout pixel: rounding
    the shift to whole pixels left up to half a layout pixel of texture misaligned (SSIM 0.94 for the
    same shot framed 1-2 pixels differently); the fractional shift is undone by bilinear resampling.
    Each picture is moved half the way, so both are resampled by the same fraction: moving only ``y``
    blurred its texture and not ``x``'s (bilinear resampling at half a pixel is a low-pass filter), and
    SSIM read the blur as a different layout (0.93 for the same shot tilted 3 pixels and panned 4).
    """
    (dx, dy), _ = cv2.phaseCorrelate(x, y)  # how far y is moved from x
    h, w = x.shape
    if abs(dx) > w // 3 or abs(dy) > h // 3:
        dx = dy = 0.0

    def moved(img: np.ndarray, sx: float, sy: float) -> np.ndarray:
        matrix = np.array([[1, 0, sx], [0, 1, sy]], dtype=np.float64)
        return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    there, back = moved(x, dx / 2, dy / 2), moved(y, -dx / 2, -dy / 2)
    mx, my = int(np.ceil(abs(dx) / 2)), int(np.ceil(abs(dy) / 2))  # the border each shift brought in: not the view
    return _ssim(there[my : h - my, mx : w - mx], back[my : h - my, mx : w - mx])


def structure(a: Descriptor, b: Descriptor) -> float:
    """SSIM of the median frames after undoing the best zoom and shift between them (phase correlation).

    A pan, a tilt or a zoom shows the same place differently framed; registering first makes SSIM
    ask whether the overlapping part shows the same layout. Shifts beyond a third of the frame are
    not the same view, so they are not undone; zooms up to 1.44 either way are tried.
    """
    x, y = a.layout.astype(np.float64), b.layout.astype(np.float64)
    best = max(max(_registered_ssim(_zoomed(x, z), y), _registered_ssim(x, _zoomed(y, z))) for z in ZOOMS)
    return float(np.clip(best, 0.0, 1.0))


def features(a: Descriptor, b: Descriptor) -> float:
    """Share of a's ORB keypoints with a distinct match in b (Lowe's ratio test), / FEATURE_SHARE."""
    if a.orb is None or b.orb is None or len(a.orb) < 2 or len(b.orb) < 2:
        return 0.0
    pairs = MATCHER.knnMatch(a.orb, b.orb, k=2)
    good = sum(1 for pair in pairs if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance)
    return min(1.0, good / len(a.orb) / FEATURE_SHARE)


def embedding(a: Descriptor, b: Descriptor) -> float | None:
    if a.embedding is None or b.embedding is None:
        return None
    return float(np.clip(np.dot(a.embedding, b.embedding), 0.0, 1.0))  # unit vectors: the cosine
