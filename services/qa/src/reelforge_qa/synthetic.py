"""Synthetic shots with known content and known faults, for calibrating and testing the checks.

A shot is a textured location (a field or a barn) seen through a camera that pans slowly, with
an optional figure (skin-toned head, coloured shirt, dark trousers) walking across it, lit by
black-body light of a given colour temperature in a D65 grade, with a little sensor noise. The
painting is done in linear light so that light colour and exposure act as they do on a camera.
Faults are parameters: the shirt colour, the light, the exposure gain, a blur, a flash frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from reelforge_shared.colour import light_linear_rgb, linear_to_srgb, rgb_to_bgr, srgb_to_linear

WIDTH, HEIGHT = 320, 180
PAN_MARGIN = 40  # pixels of background beyond the frame, for a pan
TILT_MARGIN = 40  # and for a tilt


@dataclass(frozen=True, slots=True)
class Shot:
    location: str = "field"
    figure: bool = True
    shirt: tuple[int, int, int] = (40, 70, 170)  # sRGB, blue
    kelvin: float = 5600.0
    gain: float = 1.0  # exposure, linear
    blur: float = 0.0  # Gaussian sigma in pixels
    flash_frame: int | None = None
    start_x: float = 60.0  # figure position at the first frame, and how far it walks
    walk: float = 60.0
    scale: float = 1.0
    hair: tuple[int, int, int] = (90, 60, 35)  # sRGB, brown
    build: float = 1.0  # width of shoulders and hips
    zoom: float = 1.0  # the camera zooms in by this factor over the shot (about the frame's centre)
    pan_start: int = 0  # where the camera starts, 0..PAN_MARGIN/2 pixels into the location
    tilt: int = TILT_MARGIN // 2  # where the camera looks, 0..TILT_MARGIN pixels down the location
    seed: int = 0


def _background(location: str) -> np.ndarray:
    """Reflectances (sRGB, 0..1, RGB order) of the location, wider than the frame; the same location gives the same picture."""
    rng = np.random.default_rng({"field": 11, "barn": 22}.get(location, 33))
    h, w = HEIGHT + TILT_MARGIN, WIDTH + PAN_MARGIN
    img = np.zeros((h, w, 3))
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), 1.5) * 0.05
    if location == "barn":
        img[:] = (0.55, 0.30, 0.25)  # red planks
        for x in range(0, w, 24):
            img[:, x : x + 2] = (0.25, 0.15, 0.12)
        img[int(h * 0.7) :] = (0.45, 0.43, 0.40)  # grey floor
        cv2.rectangle(img, (150, 40), (230, 125), (0.75, 0.72, 0.65), -1)  # a pale door
    else:
        horizon = int(h * 0.42)
        for row in range(horizon):
            img[row] = np.array((0.62, 0.70, 0.80)) + 0.1 * row / horizon  # pale sky, lighter at the horizon
        img[horizon:] = (0.50, 0.46, 0.36)  # earth
        for x in range(10, w, 37):  # fence posts
            cv2.rectangle(img, (x, horizon - 12), (x + 4, horizon + 30), (0.30, 0.22, 0.15), -1)
        rows = np.arange(horizon, h)
        img[horizon:, :, 1] += 0.08 * np.sin(rows / 3.0)[:, None]  # furrows
        cv2.circle(img, (w - 60, horizon - 5), 22, (0.35, 0.45, 0.25), -1)  # a bush
    return np.clip(img + texture[..., None], 0, 1)


def _figure(
    img: np.ndarray, x: float, y: float, scale: float, shirt: tuple[int, int, int], hair: tuple[int, int, int], build: float
) -> None:
    s, b = scale, scale * build
    cx, top = int(x), int(y)
    cv2.ellipse(img, (cx, top + int(12 * s)), (int(10 * s), int(12 * s)), 0, 0, 360, (0.80, 0.62, 0.50), -1)  # head
    cv2.ellipse(img, (cx, top + int(8 * s)), (int(11 * s), int(8 * s)), 0, 180, 360, tuple(c / 255 for c in hair), -1)  # hair
    shirt_colour = tuple(c / 255 for c in shirt)
    cv2.rectangle(img, (cx - int(20 * b), top + int(24 * s)), (cx + int(20 * b), top + int(70 * s)), shirt_colour, -1)
    cv2.rectangle(img, (cx - int(16 * b), top + int(70 * s)), (cx + int(16 * b), top + int(110 * s)), (0.18, 0.18, 0.22), -1)


def render_shot(shot: Shot, frames: int) -> list[np.ndarray]:
    """``frames`` BGR uint8 frames of the shot."""
    background = _background(shot.location)
    light = light_linear_rgb(shot.kelvin) * shot.gain
    rng = np.random.default_rng(shot.seed + 1)
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        pan = shot.pan_start + int(round(t * PAN_MARGIN * 0.5))
        img = background[shot.tilt : shot.tilt + HEIGHT, pan : pan + WIDTH].copy()
        if shot.figure:
            _figure(img, shot.start_x + t * shot.walk, 50 + 3 * np.sin(i * 1.3), shot.scale, shot.shirt, shot.hair, shot.build)
        if shot.zoom != 1.0:  # the camera zooms: a centred window shrinking to 1/zoom, scaled back to the frame
            z = 1.0 + t * (shot.zoom - 1.0)
            w, h = WIDTH / z, HEIGHT / z
            x0, y0 = (WIDTH - w) / 2, (HEIGHT - h) / 2
            window = np.array([[1 / z, 0, x0], [0, 1 / z, y0]], dtype=np.float32)
            img = cv2.warpAffine(img, window, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        linear = rgb_to_bgr(srgb_to_linear(img) * light)  # painted and lit in RGB, handed on in BGR for OpenCV
        if shot.flash_frame == i:
            linear = linear * 8.0  # a single frame eight times too bright: a flash
        frame: np.ndarray = linear_to_srgb(linear) * 255.0
        if shot.blur:
            frame = cv2.GaussianBlur(frame, (0, 0), shot.blur)
        frame = frame + rng.normal(0, 1.5, frame.shape)  # sensor noise
        out.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return out


def encode(frames: list[np.ndarray], fps: float, path: Path, crf: int = 18) -> Path:
    """H.264 yuv420p at ``crf`` (18: the encoder's segments), PyAV, no ffmpeg binary needed."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="bgr24")))
        container.mux(stream.encode())
    return path


def join(clips: list[list[np.ndarray]], dissolves: list[int]) -> list[np.ndarray]:
    """A film the way the encoder compiles it: ``dissolves[i]`` frames of dissolve into clip i (0 = cut).

    The outgoing clip's last frame is held for P/2 frames and the incoming clip's first for the
    rest, and the cross-fade runs over those P frames, so the film keeps the sum of the lengths.
    """
    film: list[np.ndarray] = []
    for clip, overlap in zip(clips, dissolves, strict=True):
        if not film or overlap < 2:
            film += clip
            continue
        hold_out = overlap // 2
        tail = film[-1:] * hold_out
        incoming = clip[:1] * (overlap - hold_out) + clip
        start = len(film) + hold_out - overlap
        outgoing = (film + tail)[start:]
        blended = [
            (a.astype(np.float32) * (1 - i / overlap) + b.astype(np.float32) * (i / overlap) + 0.5).astype(np.uint8)
            for i, (a, b) in enumerate(zip(outgoing, incoming[:overlap], strict=True))
        ]
        film = film[:start] + blended + incoming[overlap:]
    return film


if __name__ == "__main__":  # python -m reelforge_qa.synthetic FRAMES.npy FPS OUT.mp4 CRF: one clip, encoded by a fresh process
    import sys

    encode(list(np.load(sys.argv[1])), float(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
