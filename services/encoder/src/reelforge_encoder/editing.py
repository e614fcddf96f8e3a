"""Editing utilities on a finished video: speed, audio extraction, frame extraction, looping, trimming, subtitles.

Each is one ffmpeg recipe on local files (``reelforge encode speed|audio|...``). Limits are checked here, at the edge, with the
field, the value and the limit named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from reelforge_encoder.ffmpeg import Codec, rate, run
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import MAX_LOOPS, MAX_SPEED, MAX_STILLS_FPS, MIN_SPEED  # the API's bounds too
from reelforge_shared.media import probe
from reelforge_shared.storyboard import Storyboard

AUDIO_FORMATS = {
    "mp3": {"acodec": "libmp3lame", "audio_bitrate": "192k"},
    "aac": {"acodec": "aac", "audio_bitrate": "192k"},
    "wav": {"acodec": "pcm_s16le"},
}
AUDIO_SUFFIX = {"mp3": ".mp3", "aac": ".m4a", "wav": ".wav"}
FRAME_FORMATS = ("jpeg", "png")


def _tempo_chain(factor: float) -> list[float]:
    """atempo steps within [0.5, 2] whose product is ``factor``: the tempo changes, the pitch stays."""
    steps = []
    while factor > 2.0:
        steps.append(2.0)
        factor /= 2.0
    while factor < 0.5:
        steps.append(0.5)
        factor /= 0.5
    return [*steps, factor]


def change_speed(video: Path, factor: float, out: Path, codec: Codec) -> Path:
    """``video`` played ``factor`` times as fast (0.25 to 4), at its own frame rate, its sound at the same pitch."""
    if not MIN_SPEED <= factor <= MAX_SPEED:
        raise InvalidInput(f"speed: {factor} is outside {MIN_SPEED} to {MAX_SPEED}")
    info = probe(video, count_frames=False)
    source = ffmpeg.input(str(video))
    streams = [source.video.filter("setpts", f"PTS/{factor}").filter("fps", rate(info.fps))]
    if info.has_audio:
        audio = source.audio
        for step in _tempo_chain(factor):
            audio = audio.filter("atempo", step)
        streams.append(audio)
    args = codec.output_args(info.fps) | ({"acodec": "aac", "audio_bitrate": "192k"} if info.has_audio else {})
    args.pop("an", None)
    run(ffmpeg.output(*streams, str(out), **args), codec.exe, f"speed x{factor}")
    return out


def extract_audio(video: Path, fmt: str, out: Path, exe: str) -> Path:
    """The sound of ``video`` as MP3, AAC (in .m4a) or WAV."""
    if fmt not in AUDIO_FORMATS:
        raise InvalidInput(f"format: {fmt!r} is not one of {', '.join(AUDIO_FORMATS)}")
    if not probe(video, count_frames=False).has_audio:
        raise InvalidInput(f"{video.name} has no sound to extract")
    run(ffmpeg.input(str(video)).audio.output(str(out), **AUDIO_FORMATS[fmt]), exe, f"audio {fmt}")
    return out


def extract_frames(video: Path, fps: float, fmt: str, folder: Path, exe: str) -> list[Path]:
    """Stills of ``video`` at ``fps`` a second (JPEG or PNG), ``0001.jpg`` ... in ``folder``."""
    if fmt not in FRAME_FORMATS:
        raise InvalidInput(f"format: {fmt!r} is not one of {', '.join(FRAME_FORMATS)}")
    if not 0 < fps <= MAX_STILLS_FPS:
        raise InvalidInput(f"fps: {fps} is outside (0, {MAX_STILLS_FPS:g}]")
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "jpg" if fmt == "jpeg" else "png"
    args = {"qscale:v": 2} if fmt == "jpeg" else {}
    run(ffmpeg.input(str(video)).video.filter("fps", rate(fps)).output(str(folder / f"%04d.{suffix}"), **args), exe, "frames")
    return sorted(folder.glob(f"*.{suffix}"))


def loop(video: Path, times: int, out: Path, exe: str) -> Path:
    """``video`` played ``times`` times in a row, by stream copy (nothing encoded again)."""
    if not 1 <= times <= MAX_LOOPS:
        raise InvalidInput(f"times: {times} is outside 1 to {MAX_LOOPS}")
    stream = ffmpeg.input(str(video), stream_loop=times - 1).output(str(out), c="copy", movflags="+faststart")
    run(stream, exe, f"loop x{times}")
    return out


def trim(video: Path, start_s: float, end_s: float, out: Path, codec: Codec) -> Path:
    """``video`` from ``start_s`` to ``end_s`` (seconds), to the frame: encoded again, sound kept."""
    info = probe(video, count_frames=False)
    if not 0 <= start_s < end_s <= info.duration_s + 1e-6:
        raise InvalidInput(f"trim: {start_s}..{end_s} s is not inside the video's 0..{info.duration_s:.3f} s")
    source = ffmpeg.input(str(video))
    streams = [source.video.filter("trim", start=start_s, end=end_s).filter("setpts", "PTS-STARTPTS")]
    if info.has_audio:
        streams.append(source.audio.filter("atrim", start=start_s, end=end_s).filter("asetpts", "PTS-STARTPTS"))
    args = codec.output_args(info.fps) | ({"acodec": "aac", "audio_bitrate": "192k"} if info.has_audio else {})
    args.pop("an", None)
    run(ffmpeg.output(*streams, str(out), **args), codec.exe, f"trim {start_s}..{end_s}")
    return out


@dataclass(frozen=True, slots=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def cues(board: Storyboard) -> list[Cue]:
    """What is spoken over each segment (its narration, or its prompt's ``<S>...<E>``), while that segment shows."""
    found, start = [], 0.0
    for seg in board.segments:
        if seg.spoken:
            found.append(Cue(start, start + seg.duration_s, " ".join(seg.spoken.split())))
        start += seg.duration_s
    return found


def _clock(seconds: float, comma: bool) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if comma else '.'}{ms:03d}"


def srt(found: list[Cue]) -> str:
    return "".join(f"{i}\n{_clock(c.start_s, True)} --> {_clock(c.end_s, True)}\n{c.text}\n\n" for i, c in enumerate(found, 1))


def webvtt(found: list[Cue]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_clock(c.start_s, False)} --> {_clock(c.end_s, False)}\n{c.text}\n\n" for c in found)


def subtitle(video: Path, subtitles: Path, out: Path, codec: Codec, burn: bool = False) -> Path:
    """``video`` with ``subtitles`` (SRT) as a soft track (mov_text, stream copy), or burnt into the picture."""
    source = ffmpeg.input(str(video))
    info = probe(video, count_frames=False)
    if burn:
        picture = source.video.filter("subtitles", str(subtitles))
        streams = [picture, source.audio] if info.has_audio else [picture]
        args = codec.output_args(info.fps) | ({"acodec": "copy"} if info.has_audio else {})
        args.pop("an", None)
        run(ffmpeg.output(*streams, str(out), **args), codec.exe, "burnt-in subtitles")
    else:
        text = ffmpeg.input(str(subtitles), f="srt")
        stream = ffmpeg.output(source, text, str(out), c="copy", **{"c:s": "mov_text", "metadata:s:s:0": "language=und"})
        run(stream, codec.exe, "subtitle track")
    return out
