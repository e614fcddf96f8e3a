"""ffmpeg recipes (ffmpeg-python): frames -> segment MP4, segment MP4s -> film with transitions."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from reelforge_shared.errors import PermanentError


def ffmpeg_exe(configured: str | None = None) -> str:
    if configured:
        return configured
    if found := shutil.which("ffmpeg"):
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def rate(fps: float) -> str:
    """ffmpeg wants rates as exact fractions (23.976 -> 24000/1001)."""
    return str(Fraction(fps).limit_denominator(1001))


@dataclass(frozen=True, slots=True)
class Codec:
    exe: str
    vcodec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"

    def output_args(self, fps: float) -> dict:
        return {
            "vcodec": self.vcodec, "crf": self.crf, "preset": self.preset, "pix_fmt": "yuv420p",
            "movflags": "+faststart", "r": rate(fps), "an": None,
        }


def _run(stream: ffmpeg.nodes.OutputStream, codec: Codec, what: str) -> None:
    try:
        stream.overwrite_output().run(cmd=codec.exe, quiet=True)
    except ffmpeg.Error as exc:
        tail = exc.stderr.decode(errors="replace")[-1500:] if exc.stderr else ""
        raise PermanentError(f"ffmpeg failed on {what}: {tail}") from exc


def encode_frames(frame_dir: Path, fps: float, width: int, height: int, out: Path, codec: Codec) -> Path:
    """PNG frames ``0000.png, 0001.png, ...`` -> H.264 MP4 at ``width x height`` (lanczos scaling)."""
    source = ffmpeg.input(str(frame_dir / "%04d.png"), framerate=rate(fps), start_number=0)
    video = source.video.filter("scale", width, height, flags="lanczos").filter("setsar", 1)
    _run(video.output(str(out), **codec.output_args(fps)), codec, f"segment {out.name}")
    return out


@dataclass(frozen=True, slots=True)
class FilmPart:
    path: Path
    frames: int
    fps: float
    transition: str = "cut"  # into this part
    transition_s: float = 0.0


def film_frames(parts: list[FilmPart], fps: float) -> list[int]:
    """Frames each part contributes at the film's rate (its duration is kept)."""
    return [round(p.frames * fps / p.fps) for p in parts]


def compile_film(parts: list[FilmPart], fps: float, width: int, height: int, out: Path, codec: Codec) -> Path:
    """Join segments with their transitions; the film lasts exactly the sum of its segments.

    A dissolve of P frames holds the outgoing segment's last frame for P/2 frames and the incoming
    segment's first frame for P/2 frames, then cross-fades over those P frames: the two pads pay
    for the overlap, so the film is not shortened.
    """
    counts = film_frames(parts, fps)
    film, total = None, 0
    for part, count in zip(parts, counts, strict=True):
        clip = (
            ffmpeg.input(str(part.path)).video.filter("fps", fps=rate(fps)).filter("scale", width, height, flags="lanczos")
            .filter("setsar", 1).filter("format", "yuv420p").filter("trim", end_frame=count).filter("setpts", "PTS-STARTPTS")
            .filter("settb", "AVTB")  # one timebase for all: xfade refuses inputs whose timebases differ
        )
        overlap = round(part.transition_s * fps) if part.transition == "dissolve" else 0
        if film is None:
            film = clip
        elif overlap < 2:  # a dissolve shorter than two frames is a cut
            film = ffmpeg.concat(film, clip, v=1, a=0)
        else:
            hold_out, hold_in = overlap // 2, overlap - overlap // 2
            film = film.filter("tpad", stop_mode="clone", stop=hold_out)
            clip = clip.filter("tpad", start_mode="clone", start=hold_in)
            offset = (total + hold_out - overlap) / fps
            film = ffmpeg.filter([film, clip], "xfade", transition="fade", duration=overlap / fps, offset=offset)
        total += count
    _run(film.output(str(out), **codec.output_args(fps)), codec, f"film {out.name}")
    return out
