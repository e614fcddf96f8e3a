"""Deliverables from one master (the media guide's recipes): centre crops, a thumbnail, a logo, a size budget.

The size budget (the GPU brief: the film under 500 MB) is met by choosing the rate: a deliverable is
encoded at the quality preset, and only when the file is over budget is it encoded again with
the rate capped (CRF with a VBV ceiling) at what the budget allows for its duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import ffmpeg

from reelforge_encoder.ffmpeg import Codec, encode_pieces, even, overlay_logo, run
from reelforge_shared.errors import PermanentError

MB = 1_000_000  # budgets are in decimal megabytes, as file sizes are shown
RATIOS = {"9:16": (9, 16), "1:1": (1, 1)}
THUMBNAIL_AT_S = 5.0  # the media guide takes the still at 00:00:05 (or mid-film when the film is shorter than 10 s)
MAX_BUDGET_TRIES = 3


def crop_size(width: int, height: int, ratio: str) -> tuple[int, int]:
    """The largest centred ``ratio`` (w:h) window of a ``width x height`` frame, in even pixels (yuv420p)."""
    a, b = RATIOS[ratio]
    if width * b > height * a:
        return even(height * a / b), height
    return width, even(width * b / a)


def crop_name(ratio: str) -> str:
    return ratio.replace(":", "x")


def crop(source: Path, size: tuple[int, int], fps: float, out: Path, codec: Codec, logo: Path | None) -> Path:
    """A centred ``size`` window of the master, silent, with the logo in its own top-left corner.

    The master's logo sits in its corner, outside every centred crop of a landscape master, so a
    crop shows only its own logo.
    """
    width, height = size
    video = ffmpeg.input(str(source)).video.filter("crop", width, height)
    if logo is not None:
        video = overlay_logo(video, logo, width, height)
    run(video.output(str(out), **codec.output_args(fps)), codec.exe, f"deliverable {out.name}")
    return out


def crop_pieces(
    source: Path,
    size: tuple[int, int],
    fps: float,
    out: Path,
    codec: Codec,
    logo: Path | None,
    bounds: list[int],
    keyframes: list[int],
) -> list[Path]:
    """A segment's centred ``size`` window as pieces split at ``bounds`` (``encode_pieces``), to join a crop by copy."""
    width, height = size
    video = ffmpeg.input(str(source)).video.filter("crop", width, height)
    if logo is not None:
        video = overlay_logo(video, logo, width, height)
    return encode_pieces(video, bounds, keyframes, fps, out, codec, f"deliverable {out.name}")


def thumbnail(video: Path, duration_s: float, out: Path, exe: str) -> Path:
    """A JPEG still (full-range, best quality) at the media guide's 5 s, or mid-film for a short film."""
    at = min(THUMBNAIL_AT_S, duration_s / 2)
    still = ffmpeg.input(str(video), ss=f"{at:.3f}").video.filter("scale", out_range="pc").filter("format", "yuvj420p")
    run(still.output(str(out), vframes=1, **{"q:v": 2}), exe, f"thumbnail {out.name}")
    return out


def budget_kbps(budget_bytes: int, duration_s: float, audio_kbps: int) -> int:
    """Video rate cap that fits ``budget_bytes``: 2 % for the MP4 index, the audio, and one more second for the VBV buffer."""
    return max(8, int((budget_bytes * 8 * 0.98 / 1000 - audio_kbps * duration_s) / (duration_s + 1.0)))


def fit(
    encode: Callable[[Codec], Path], codec: Codec, budget_bytes: int, duration_s: float, audio_kbps: int
) -> tuple[Path, int | None]:
    """Encode at the quality preset; over budget, encode again at a capped rate (lower each time) until it fits."""
    path, cap = encode(codec), None
    for _ in range(MAX_BUDGET_TRIES):
        size = path.stat().st_size
        if size <= budget_bytes:
            return path, cap
        cap = budget_kbps(budget_bytes, duration_s, audio_kbps) if cap is None else max(8, int(cap * budget_bytes / size * 0.9))
        path = encode(replace(codec, maxrate_kbps=cap))
    if path.stat().st_size <= budget_bytes:
        return path, cap
    raise PermanentError(
        f"{path.name}: {path.stat().st_size} bytes at {cap} kbit/s is still over the budget of {budget_bytes} bytes"
    )
