"""ffmpeg recipes (ffmpeg-python): frames -> segment MP4 (colour, motion), segment MP4s -> film with transitions."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from reelforge_encoder.grading import Normalisation, grade_filters
from reelforge_shared.errors import PermanentError
from reelforge_shared.work import run_subprocess

# x264 preset names onto NVENC's p1 (fastest) .. p7 (best), so one quality preset drives both.
_NVENC_PRESETS = {
    "ultrafast": "p1",
    "superfast": "p1",
    "veryfast": "p2",
    "faster": "p3",
    "fast": "p4",
    "medium": "p5",
    "slow": "p6",
    "slower": "p7",
    "veryslow": "p7",
}
_XFADE = {"dissolve": "fade", "fade": "fadeblack"}  # storyboard transition -> xfade transition
_HD = {"colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709"}  # tag what scale converted to
LOGO_SHARE = 0.15  # logo width as a share of the shorter side: the same size on the 16:9 master and on a 9:16 crop
LOGO_MARGIN_SHARE = 0.01  # the media guide overlays at 10:10 on a 1080-line frame: about 1 % of the shorter side


DEFAULT_TIMEOUT_S = 1800.0  # REELFORGE_FFMPEG_TIMEOUT_S: a film's longest step (the film's sound) takes minutes, not half an hour
# Every input is a local file or a pipe: no http, tcp, concat:, subfile: ... whatever a file's contents name.
PROTOCOLS = "file,pipe"
# Demuxers an input may be read with: media only. Not HLS, DASH, concat listings or tty text, which open other files
# by the names inside them; the film's own concat listing and lavfi sources are allowed where Reelforge names them (-f).
MEDIA_DEMUXERS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "mov", "wav", "mp3", "flac", "ogg", "aac")
NAMED_DEMUXERS = ("concat", "lavfi", "srt")  # srt: the subtitles `reelforge encode subtitles` writes itself


class FFmpegExe(str):
    """The ffmpeg binary's path, carrying the time limit every run of it gets (``REELFORGE_FFMPEG_TIMEOUT_S``).

    A ``str`` so that every recipe that takes ``exe`` keeps its signature; :func:`run` reads the limit.
    """

    timeout_s: float

    def __new__(cls, path: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> FFmpegExe:
        exe = super().__new__(cls, path)
        exe.timeout_s = timeout_s
        return exe


def ffmpeg_exe(configured: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> FFmpegExe:
    if configured:
        return FFmpegExe(configured, timeout_s)
    if found := shutil.which("ffmpeg"):
        return FFmpegExe(found, timeout_s)
    import imageio_ffmpeg

    return FFmpegExe(imageio_ffmpeg.get_ffmpeg_exe(), timeout_s)


def guarded_args(args: list[str]) -> list[str]:
    """``args`` with ``-protocol_whitelist`` and ``-format_whitelist`` before every ``-i`` (nested opens inherit both)."""
    out: list[str] = []
    named: str | None = None  # the -f of the input being described
    for i, arg in enumerate(args):
        if arg == "-f" and i + 1 < len(args) and args[i + 1] in NAMED_DEMUXERS:
            named = args[i + 1]
        if arg == "-i":
            formats = ",".join(MEDIA_DEMUXERS + ((named,) if named else ()))
            out += ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", formats]
            named = None
        out.append(arg)
    return out


def rate(fps: float) -> str:
    """ffmpeg wants rates as exact fractions (23.976 -> 24000/1001)."""
    return str(Fraction(fps).limit_denominator(1001))


@dataclass(frozen=True, slots=True)
class Codec:
    """An ffmpeg binary and one video encoder's settings; ``crf`` is on that encoder's own scale (NVENC: cq)."""

    exe: str
    vcodec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    maxrate_kbps: int | None = None  # a size budget: capped CRF (VBV), so the rate never exceeds it

    def output_args(self, fps: float) -> dict:
        args: dict = {"vcodec": self.vcodec, "pix_fmt": "yuv420p", "movflags": "+faststart", "r": rate(fps), "an": None, **_HD}
        if self.vcodec.endswith("_nvenc"):
            args |= {"rc": "vbr", "cq": self.crf, "b:v": 0, "preset": _NVENC_PRESETS.get(self.preset, self.preset)}
        else:
            args |= {"crf": self.crf, "preset": self.preset}
        if self.vcodec == "libx265":
            # hvc1: QuickTime and browsers play it; closed GOPs, so a film can be cut at any keyframe and joined by copy
            args |= {"tag:v": "hvc1", "x265-params": "log-level=error:open-gop=0"}
        if self.vcodec != "libx265":
            args |= {"forced-idr": 1}  # a forced keyframe is an IDR (libx265: its closed GOPs make it one)
        if self.maxrate_kbps:
            args |= {"maxrate": f"{self.maxrate_kbps}k", "bufsize": f"{self.maxrate_kbps}k"}  # a 1 s buffer
        return args


@dataclass(frozen=True, slots=True)
class Look:
    """What a segment gets besides scaling: colour normalisation, a grade, motion interpolation."""

    normalise: Normalisation | None = None
    grade: str | None = None
    fps: float | None = None  # interpolate up to this rate, keeping the duration
    interpolation: str = "mci"  # minterpolate mi_mode: mci (motion-compensated) or blend


def run(stream: ffmpeg.nodes.OutputStream, exe: str, what: str) -> str:
    """Run one ffmpeg graph, local files only, killed at ``exe``'s time limit; returns its stderr (filters' measurements)."""
    args = guarded_args(stream.overwrite_output().global_args("-hide_banner", "-nostats").compile(cmd=exe))
    timeout_s = exe.timeout_s if isinstance(exe, FFmpegExe) else DEFAULT_TIMEOUT_S
    try:
        done = run_subprocess(args, timeout=timeout_s)  # our ffmpeg, no shell; killed if the runner abandons the work
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it and waited
        raise PermanentError(
            f"ffmpeg ran past its {timeout_s:g} s limit on {what} and was killed (REELFORGE_FFMPEG_TIMEOUT_S)"
        ) from exc
    if done.returncode != 0:
        raise PermanentError(f"ffmpeg failed on {what}: {done.stderr.decode(errors='replace')[-1500:]}")
    return done.stderr.decode(errors="replace")


def even(value: float) -> int:
    """yuv420p wants even sizes."""
    return max(2, int(value) // 2 * 2)


def overlay_logo(video: ffmpeg.nodes.FilterableStream, logo: Path, width: int, height: int) -> ffmpeg.nodes.FilterableStream:
    """The logo in the top-left corner of a ``width x height`` picture, scaled to its shorter side."""
    short = min(width, height)
    margin = max(2, round(short * LOGO_MARGIN_SHARE))
    mark = ffmpeg.input(str(logo)).video.filter("scale", even(short * LOGO_SHARE), -2)  # -2: keep its aspect, even height
    return video.overlay(mark, x=margin, y=margin)  # a still: overlay repeats it to the end


def interpolated_frames(frames: int, fps: float, out_fps: float) -> int:
    """Frames a segment has at ``out_fps`` with the same duration."""
    return round(frames * out_fps / fps)


def keyframe_args(keyframes: list[int], fps: float) -> dict:
    """Output arguments that start a GOP at each of ``keyframes`` (frame numbers) with the film's timescale."""
    expr = "+".join(f"eq(n,{k})" for k in sorted(set(keyframes) | {0}))
    return {"force_key_frames": f"expr:{expr}", "video_track_timescale": Fraction(rate(fps)).numerator * 1000}


def piece_path(out: Path, j: int) -> Path:
    """File of a segment's ``j``-th piece beside the segment ``out``."""
    return out.with_name(f"{out.stem}.part{j}.mp4")


def encode_pieces(
    video: ffmpeg.nodes.FilterableStream,
    bounds: list[int],
    keyframes: list[int],
    fps: float,
    out: Path,
    codec: Codec,
    what: str,
) -> list[Path]:
    """Encode ``video`` in one pass as pieces ``[bounds[j], bounds[j + 1])`` (frames), each its own MP4 starting on an IDR.

    Every piece has the same codec settings and timescale, so the pieces (and a film's transition
    spans) join by stream copy; ``keyframes`` are film-wide frame numbers that also start a GOP.
    """
    spans = list(zip(bounds, bounds[1:], strict=False))
    paths = [piece_path(out, j) for j in range(len(spans))]
    branches = video.filter_multi_output("split", len(spans)) if len(spans) > 1 else None
    outputs = []
    for j, ((a, b), path) in enumerate(zip(spans, paths, strict=True)):
        stream = video if branches is None else branches[j]
        if len(spans) > 1:
            stream = stream.filter("trim", start_frame=a, end_frame=b).filter("setpts", "PTS-STARTPTS")
        marks = [k - a for k in keyframes if a <= k < b]
        outputs.append(stream.output(str(path), **codec.output_args(fps), **keyframe_args(marks, fps)))
    run(ffmpeg.merge_outputs(*outputs), codec.exe, what)
    return paths


NO_DECODER = "none"  # a decoder list (codec_whitelist) that names no decoder


def concat_copy(pieces: list[Path], out: Path, exe: str) -> Path:
    """Join MP4 pieces encoded alike (``encode_pieces``) without decoding: ffmpeg's concat demuxer, stream copy."""
    if len(pieces) == 1:
        return shutil.copyfile(pieces[0], out)
    listing = out.with_name(f"{out.stem}.concat.txt")
    # The demuxer opens each piece with avformat_find_stream_info, which decodes its first frame (a whole IDR at
    # 1080p, about 25 ms: 0.8 s of CPU for a 33-shot film) unless no decoder may open; a copy never decodes.
    opened = f"option codec_whitelist {NO_DECODER}\n"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{p.resolve()}'\n{opened}" for p in pieces))
    # auto_convert=0: the pieces' packets as they are (by default the demuxer writes SPS/PPS into every keyframe)
    stream = ffmpeg.input(str(listing), f="concat", safe=0, auto_convert=0).output(str(out), c="copy", movflags="+faststart")
    run(stream, exe, f"join {out.name} (stream copy)")
    return out


def encode_frames(
    source: Path,
    fps: float,
    width: int,
    height: int,
    out: Path,
    codec: Codec,
    look: Look | None = None,
    bounds: list[int] | None = None,
    keyframes: list[int] | None = None,
    logo: Path | None = None,
) -> Path:
    """PNG frames ``0000.png, 0001.png, ...`` (or a video file) -> MP4 at ``width x height``.

    With ``bounds`` (frame numbers at the output rate, first 0, last the frame count) the segment is
    encoded once as pieces split there (``piece_path``), each starting on an IDR, and ``out`` is
    their join by copy: the film takes the pieces between its transitions without decoding
    (``film_joins``). ``keyframes`` start more GOPs; ``logo`` is burnt in for the same reason.

    Colour and interpolation run at the generation size, before the lanczos upscale: the same
    result for a fraction of the work (minterpolate at 1080p runs at a few frames a second).
    """
    look = look or Look()
    if source.is_dir():
        count = len(list(source.glob("*.png")))
        video = ffmpeg.input(str(source / "%04d.png"), framerate=rate(fps), start_number=0).video
    else:
        from reelforge_shared.media import probe

        count = probe(source).frame_count
        video = ffmpeg.input(str(source)).video
    if look.normalise:
        video = video.filter("lutrgb", **look.normalise.filter_args())
    for name, args in grade_filters(look.grade) if look.grade else []:
        video = video.filter(name, **args)
    out_fps = fps
    if look.fps and look.fps > fps:
        out_fps = look.fps
        # minterpolate stops at its second-to-last input frame: two clones of the last frame let it
        # cover the last frame's full interval, and trim cuts the result to frames * out_fps / fps.
        video = (
            video.filter("tpad", stop_mode="clone", stop=2)
            .filter(
                "minterpolate",
                fps=rate(out_fps),
                mi_mode=look.interpolation,
                **({"mc_mode": "aobmc", "me_mode": "bidir"} if look.interpolation == "mci" else {}),
            )
            .filter("trim", end_frame=interpolated_frames(count, fps, out_fps))
            .filter("setpts", "PTS-STARTPTS")
        )
    video = video.filter("scale", width, height, flags="lanczos", out_color_matrix="bt709", out_range="tv").filter("setsar", 1)
    if logo is not None:
        video = overlay_logo(video, logo, width, height)
    if bounds is not None:
        pieces = encode_pieces(video, bounds, keyframes or [], out_fps, out, codec, f"segment {out.name}")
        return concat_copy(pieces, out, codec.exe)
    run(video.output(str(out), **codec.output_args(out_fps)), codec.exe, f"segment {out.name}")
    return out


@dataclass(frozen=True, slots=True)
class FilmPart:
    path: Path
    frames: int
    fps: float
    transition: str = "cut"  # into this part: cut, dissolve, fade (through black)
    transition_s: float = 0.0


def film_frames(parts: list[FilmPart], fps: float) -> list[int]:
    """Frames each part contributes at the film's rate (its duration is kept)."""
    return [round(p.frames * fps / p.fps) for p in parts]
