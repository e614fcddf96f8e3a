"""The film's sound: narration cues per segment, a music bed ducked under them, one loudness (EBU R128).

Every clip is first levelled to the same loudness (a linear gain from its measured integrated
loudness), so the balance and the ducking do not depend on how loud a file was recorded. The mix
is then normalised in two passes (measure, then loudnorm in linear mode): the whole film lands on
the target, within the ±1 LU that EBU R128 allows for programmes, without pumping.
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from reelforge_encoder.ffmpeg import run
from reelforge_shared.errors import PermanentError

SAMPLE_RATE = 48000  # broadcast and web video audio rate
AUDIO_KBPS = 192  # AAC stereo at 192 kbit/s is transparent for speech and music
VOICE_LUFS = -20.0  # level of each narration clip before mixing; the final normalisation moves the whole mix
MUSIC_UNDER_VOICE_LU = 10.0  # a music bed sits 10 LU under the voice even where nobody speaks
SILENCE_LUFS = -70.0  # the meter's floor: what it reads for silence
TRUE_PEAK_DB = -1.5  # loudnorm's default true-peak ceiling; leaves room for AAC's overshoot
# Ducking: the voice drives a compressor on the music. A voice at -20 LUFS peaks near -14 dBFS, far above
# the threshold (-34 dBFS), so at ratio 10 the music drops by about 12 dB while someone speaks.
DUCK = {"threshold": 0.02, "ratio": 10, "attack": 20, "release": 400}


@dataclass(frozen=True, slots=True)
class Cue:
    """A clip that starts with a segment and is cut at that segment's end."""

    path: Path
    start_s: float
    length_s: float


def speak(text: str, voice: str, out: Path, espeak: str) -> Path:
    """Narration text -> WAV with espeak-ng (text on stdin, so a leading dash is not an option)."""
    cmd = [espeak, "-v", voice, "-w", str(out), "--stdin"]
    # S603: the configured espeak-ng binary with an argument list (no shell); the user's text goes on stdin.
    done = subprocess.run(cmd, input=text, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0 or not out.exists():
        raise PermanentError(f"espeak-ng failed for voice {voice!r}: {done.stderr.strip()[-500:]}")
    return out


def measure(source: Path, exe: str) -> dict[str, float]:
    """EBU R128 measurements of a file by ffmpeg's ebur128 meter: integrated loudness ``i`` and its gate
    ``thresh`` (LUFS), loudness range ``lra`` (LU), true peak ``tp`` (dBTP). Silence reads -70 LUFS.

    ebur128 rather than loudnorm's own first pass: on short mixes loudnorm's first-pass reading was
    about 1 LU off the meter (it measures through its 3 s look-ahead), the second pass then missed the target.
    """
    err = run(
        ffmpeg.input(str(source)).audio.filter("ebur128", peak="true").output("-", format="null"),
        exe,
        f"loudness of {source.name}",
    )
    summary = err[err.rfind("Summary:") :]
    values = re.search(
        r"I:\s+(-?[\d.]+) LUFS\s+Threshold:\s+(-?[\d.]+) LUFS.*?LRA:\s+([\d.]+) LU.*?Peak:\s+(-?[\d.]+|-inf) dBFS", summary, re.S
    )
    if values is None:
        raise PermanentError(f"no loudness measurement for {source.name}: {summary[-300:]}")
    i, thresh, lra, tp = (float(v) for v in values.groups())
    return {"i": i, "thresh": thresh, "lra": lra, "tp": tp}


def _levelled(source: Path, target_lufs: float, exe: str, **input_args: object) -> ffmpeg.nodes.FilterableStream:
    measured = measure(source, exe)["i"]
    gain = 0.0 if measured <= SILENCE_LUFS else target_lufs - measured  # silence stays silence
    return (
        ffmpeg.input(str(source), **input_args)
        .audio.filter("aresample", SAMPLE_RATE)
        .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
        .filter("volume", f"{gain:.2f}dB")
    )


def mix(cues: list[Cue], music: Path | None, duration_s: float, out: Path, exe: str) -> Path:
    """Cues at their segments' starts, the music looped under them and ducked; float WAV of the film's length."""
    voices = [
        _levelled(c.path, VOICE_LUFS, exe).filter("atrim", end=c.length_s).filter("adelay", delays=round(c.start_s * 1000), all=1)
        for c in cues
    ]
    voice = None
    if voices:
        voice = (
            voices[0] if len(voices) == 1 else ffmpeg.filter(voices, "amix", inputs=len(voices), normalize=0, duration="longest")
        )
        voice = voice.filter("apad", whole_dur=duration_s)
    if music is None:
        mixed = voice
    else:
        bed = _levelled(music, VOICE_LUFS - MUSIC_UNDER_VOICE_LU, exe, stream_loop=-1).filter("atrim", end=duration_s)
        if voice is None:
            mixed = bed
        else:
            split = voice.filter_multi_output("asplit", 2)
            to_duck, to_mix = split[0], split[1]
            ducked = ffmpeg.filter([bed, to_duck], "sidechaincompress", **DUCK)
            mixed = ffmpeg.filter([ducked, to_mix], "amix", inputs=2, normalize=0, duration="first")
    if mixed is None:
        raise ValueError("nothing to mix")
    mixed = mixed.filter("atrim", end=duration_s)
    run(mixed.output(str(out), acodec="pcm_f32le", ar=SAMPLE_RATE), exe, "audio mix")
    return out


def normalise(mix_wav: Path, target_lufs: float, out: Path, exe: str) -> Path:
    """Second pass: loudnorm in linear mode with the first pass's measurements, encoded to AAC."""
    m = measure(mix_wav, exe)
    audio = ffmpeg.input(str(mix_wav)).audio
    if m["i"] > SILENCE_LUFS:  # a silent mix cannot be brought to a loudness; it stays silent
        # Linear mode falls back to dynamic compression when the target range is below the source's:
        # ask for the source's own range (20 LU is the most every ffmpeg version accepts).
        lra = min(20, max(7, math.ceil(m["lra"]) + 1))
        audio = audio.filter(
            "loudnorm",
            I=target_lufs,
            TP=TRUE_PEAK_DB,
            LRA=lra,
            linear="true",
            measured_I=m["i"],
            measured_TP=m["tp"],
            measured_LRA=m["lra"],
            measured_thresh=m["thresh"],
            offset=0,
        )
    audio = audio.filter("aresample", SAMPLE_RATE)  # loudnorm works at 192 kHz
    run(audio.output(str(out), acodec="aac", audio_bitrate=f"{AUDIO_KBPS}k", ar=SAMPLE_RATE), exe, "loudness normalisation")
    return out


def mux(video: Path, audio: Path | None, out: Path, exe: str) -> Path:
    """The video stream as it is, plus the audio stream when there is one (none: no audio stream at all)."""
    streams = [ffmpeg.input(str(video)).video] + ([ffmpeg.input(str(audio)).audio] if audio else [])
    run(ffmpeg.output(*streams, str(out), vcodec="copy", acodec="copy", movflags="+faststart"), exe, f"mux {out.name}")
    return out


def with_sound(video: Path, sound: Path, duration_s: float, out: Path, exe: str) -> Path:
    """A segment's video stream as it is, and the sound its model made (LTX-2) as AAC, exactly the video's length.

    The model's track is cut or padded with silence to ``duration_s``; resampled to the film's rate and to stereo,
    so the film takes every segment's sound alike.
    """
    audio = (
        ffmpeg.input(str(sound))
        .audio.filter("aresample", SAMPLE_RATE)
        .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
        .filter("apad", whole_dur=duration_s)
        .filter("atrim", end=duration_s)
    )
    stream = ffmpeg.output(
        ffmpeg.input(str(video)).video, audio, str(out),
        vcodec="copy", acodec="aac", audio_bitrate=f"{AUDIO_KBPS}k", ar=SAMPLE_RATE, movflags="+faststart",
    )
    run(stream, exe, f"sound of {out.name}")
    return out
