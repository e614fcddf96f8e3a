"""The film's sound: each segment's own sound, a music bed ducked under them, one loudness (EBU R128).

A segment's sound is made as the segment is encoded (``segment_sound``): the audio its clip brought
(a model that makes sound, a clip of the sound-clips note with speech and effects), its narration (espeak-ng) or its
audio file, mixed and cut to the segment's length. The film lays these end to end under the video it
joins by copy (``lay_end_to_end``), fading across dissolves and fades.

Every clip is first levelled to the same loudness (a linear gain from its measured integrated
loudness), so the balance and the ducking do not depend on how loud a file was recorded. The mix
is then normalised in two passes (measure, then loudnorm in linear mode): the whole film lands on
the target, within the ±1 LU that EBU R128 allows for programmes, without pumping.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import ffmpeg

from reelforge_encoder.ffmpeg import run
from reelforge_shared.errors import PermanentError
from reelforge_shared.work import run_subprocess

SAMPLE_RATE = 48000  # broadcast and web video audio rate
AUDIO_KBPS = 192  # AAC stereo at 192 kbit/s is transparent for speech and music
VOICE_LUFS = -20.0  # level of each narration clip before mixing; the final normalisation moves the whole mix
MUSIC_UNDER_VOICE_LU = 10.0  # a music bed sits 10 LU under the voice even where nobody speaks
SILENCE_LUFS = -70.0  # the meter's floor: what it reads for silence
TRUE_PEAK_DB = -1.5  # loudnorm's default true-peak ceiling; leaves room for AAC's overshoot
# Ducking: the voice drives a compressor on the music. A voice at -20 LUFS peaks near -14 dBFS, far above
# the threshold (-34 dBFS), so at ratio 10 the music drops by about 12 dB while someone speaks.
DUCK = {"threshold": 0.02, "ratio": 10, "attack": 20, "release": 400}


def speak(text: str, voice: str, out: Path, espeak: str) -> Path:
    """Narration text -> WAV with espeak-ng (text on stdin, so a leading dash is not an option)."""
    cmd = [espeak, "-v", voice, "-w", str(out), "--stdin"]
    # S603: the configured espeak-ng binary with an argument list (no shell); the user's text goes on stdin.
    done = run_subprocess(cmd, input=text, text=True)  # killed if the runner abandons the work
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


def segment_sound(sources: list[Path], duration_s: float, out: Path, exe: str) -> Path | None:
    """A segment's sound: its ``sources`` (its clip's own audio, its narration or audio file) each levelled to the
    voice level, mixed, cut or padded with silence to exactly ``duration_s``; 48 kHz stereo FLAC. None without sources.

    Made once per segment, as the segment is encoded: the film only lays these end to end.
    """
    if not sources:
        return None
    voices = [_levelled(path, VOICE_LUFS, exe) for path in sources]
    sound = voices[0] if len(voices) == 1 else ffmpeg.filter(voices, "amix", inputs=len(voices), normalize=0, duration="longest")
    samples = round(duration_s * SAMPLE_RATE)
    sound = sound.filter("apad", whole_len=samples).filter("atrim", end_sample=samples)
    run(sound.output(str(out), acodec="flac", sample_fmt="s32", ar=SAMPLE_RATE), exe, f"sound {out.name}")
    return out


def lay_end_to_end(
    sounds: list[Path | None], bounds_s: list[float], fades: list[tuple[float, float]], out: Path, exe: str
) -> Path:
    """The film's voice track: segment ``i``'s sound (silence where it has none) from ``bounds_s[i]`` to ``bounds_s[i + 1]``.

    ``fades[i]`` (seconds in, seconds out): a dissolve or fade fades the outgoing sound out over the
    outgoing picture's share of it and the incoming sound in over the incoming picture's, each sound
    staying with its own picture (lips stay in sync). Float WAV, sample-exact at the film's length.
    """
    edges = [round(t * SAMPLE_RATE) for t in bounds_s]
    streams = []
    # One silence split once per silent segment: ffmpeg-python takes two equal silence chains (two silent segments of
    # one length) for one node with two outputs, which ffmpeg refuses.
    silent = sum(path is None for path in sounds)
    silence = ffmpeg.input(f"anullsrc=r={SAMPLE_RATE}:cl=stereo", f="lavfi").audio
    split = silence.filter_multi_output("asplit", silent) if silent > 1 else None
    quiet = iter([split[j] for j in range(silent)] if split is not None else [silence])
    for i, (path, (fade_in, fade_out)) in enumerate(zip(sounds, fades, strict=True)):
        samples = edges[i + 1] - edges[i]
        if path is None:
            stream = next(quiet)
        else:
            stream = ffmpeg.input(str(path)).audio.filter("apad")
        stream = (
            stream.filter("aresample", SAMPLE_RATE)
            .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
            .filter("atrim", end_sample=samples)
            .filter("asetpts", "PTS-STARTPTS")
        )
        length = samples / SAMPLE_RATE
        if path is not None and fade_in > 0:
            stream = stream.filter("afade", t="in", st=0, d=min(fade_in, length), curve="qsin")
        if path is not None and fade_out > 0:
            stream = stream.filter("afade", t="out", st=max(0.0, length - fade_out), d=min(fade_out, length), curve="qsin")
        streams.append(stream)
    voice = streams[0] if len(streams) == 1 else ffmpeg.concat(*streams, v=0, a=1)
    run(voice.output(str(out), acodec="pcm_f32le", ar=SAMPLE_RATE), exe, "segment sounds end to end")
    return out


def mix(voice: Path | None, music: Path | None, duration_s: float, out: Path, exe: str) -> Path:
    """The segments' sounds (levelled, the film's length) with the music looped under them and ducked; float WAV."""
    if music is not None:
        mixed = _levelled(music, VOICE_LUFS - MUSIC_UNDER_VOICE_LU, exe, stream_loop=-1).filter("atrim", end=duration_s)
        if voice is not None:
            split = ffmpeg.input(str(voice)).audio.filter_multi_output("asplit", 2)
            ducked = ffmpeg.filter([mixed, split[0]], "sidechaincompress", **DUCK)
            mixed = ffmpeg.filter([ducked, split[1]], "amix", inputs=2, normalize=0, duration="first")
    elif voice is not None:
        mixed = ffmpeg.input(str(voice)).audio
    else:
        raise ValueError("nothing to mix")
    mixed = mixed.filter("apad", whole_dur=duration_s).filter("atrim", end=duration_s)
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
    """The video stream as it is, plus the audio stream when there is one (none: no audio stream at all).

    AAC audio is copied; any other (a segment's FLAC sound) is encoded to AAC on the way in.
    """
    streams = [ffmpeg.input(str(video)).video] + ([ffmpeg.input(str(audio)).audio] if audio else [])
    copy = audio is None or audio.suffix == ".m4a"
    audio_args = {"acodec": "copy"} if copy else {"acodec": "aac", "audio_bitrate": f"{AUDIO_KBPS}k"}
    run(ffmpeg.output(*streams, str(out), vcodec="copy", movflags="+faststart", **audio_args), exe, f"mux {out.name}")
    return out
