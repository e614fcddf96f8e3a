"""Media made and read back by tests: still frames, short encoded segments, sine tones, decoded pixels."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, encode_frames, ffmpeg_exe

FFMPEG = ffmpeg_exe()
CODEC = Codec(FFMPEG, preset="ultrafast")


def pixels(png: bytes) -> np.ndarray:
    """An image's RGB pixels as signed integers, so two images can be subtracted."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def png_bytes(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A PNG of one colour."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), colour, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def grey_frames(folder: Path, count: int, grey: int, size: tuple[int, int] = (64, 36)) -> Path:
    """`count` PNG frames of one grey level (0000.png, 0001.png, ...) in a new folder."""
    folder.mkdir()
    width, height = size
    for i in range(count):
        Image.fromarray(np.full((height, width, 3), grey, np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def grey_segment(
    tmp_path: Path, name: str, count: int, fps: float, grey: int, width: int = 320, height: int = 180, codec: Codec = CODEC
) -> Path:
    """An encoded segment of `count` grey frames at `fps`, scaled to width x height: tmp_path/name.mp4."""
    return encode_frames(grey_frames(tmp_path / name, count, grey), fps, width, height, tmp_path / f"{name}.mp4", codec)


def tone(path: Path, hz: int, seconds: float, gain_db: float = 0.0) -> Path:
    """A sine tone made by ffmpeg's lavfi source, at `gain_db` below (or above) full scale."""
    subprocess.run(
        [
            *(FFMPEG, "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"sine=frequency={hz}:duration={seconds}"),
            *(("-af", f"volume={gain_db}dB") if gain_db else ()),
            str(path),
        ],
        check=True,
    )
    return path
