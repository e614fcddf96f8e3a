"""The film's sound: per-segment audio files and narration, a music bed ducked under them, EBU R128 loudness.

Audio files are made here with ffmpeg's sine source; loudness is read back with ffmpeg's ebur128 meter
and the ducking with an FFT of the decoded film (PyAV). espeak-ng is not installed here: the
narration test uses a stand-in script with espeak-ng's command line, named as such.
"""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, encode_frames, ffmpeg_exe
from reelforge_encoder.film_assembly import make_film
from reelforge_shared.errors import InvalidInput, PermanentError
from reelforge_shared.media import probe
from reelforge_shared.storyboard import parse_storyboard
from support.media import tone

EXE = ffmpeg_exe()
CODEC = Codec(EXE, preset="ultrafast")
LEAN = {"crops": [], "thumbnail": False}  # deliverables are tested elsewhere


def _segments(tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        folder = tmp_path / f"frames{n}"
        folder.mkdir()
        for i in range(4):
            Image.fromarray(np.full((36, 64, 3), 60 + 40 * n, np.uint8)).save(folder / f"{i:04d}.png")
        paths.append(encode_frames(folder, 2, 160, 90, tmp_path / f"{n}.mp4", CODEC))
    return paths


def _film(tmp_path: Path, data: dict, espeak: str | None = None) -> tuple[Path, dict]:
    board = parse_storyboard({"output": {"width": 160, "height": 90}, "deliverables": LEAN} | data)
    work = tmp_path / "work"
    work.mkdir()
    result = make_film(board, _segments(tmp_path, len(board.segments)), work, CODEC, 2, lambda field, ref: Path(ref), espeak)
    return result.film, result.meta


def _integrated_lufs(path: Path) -> float:
    err = subprocess.run(
        [EXE, "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a", "-af", "ebur128", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", err)[-1])


def _band_level_db(path: Path, hz: float, start_s: float, end_s: float) -> float:
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    window = samples[int(start_s * rate) : int(end_s * rate)]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    freqs = np.fft.rfftfreq(len(window), 1 / rate)
    return float(20 * np.log10(spectrum[(freqs > hz - 20) & (freqs < hz + 20)].max()))


def test_mix_of_segment_audio_and_music_is_normalised_to_minus_16_lufs(tmp_path: Path) -> None:
    quiet, loud = tone(tmp_path / "quiet.wav", 900, 1.5, -30), tone(tmp_path / "loud.wav", 600, 1.8, -3)
    film, meta = _film(
        tmp_path,
        {
            "segments": [
                {"id": "a", "prompt": "x", "frames": 4, "fps": 2, "audio": str(quiet)},
                {"id": "b", "prompt": "y", "frames": 4, "fps": 2},
                {"id": "c", "prompt": "z", "frames": 4, "fps": 2, "audio": str(loud), "transition": "dissolve"},
            ],
            "audio": {"music": str(tone(tmp_path / "bed.wav", 220, 1.3, -12))},  # shorter than the film: looped
        },
    )
    info = probe(film)
    assert info.has_audio
    assert meta["has_audio"]
    assert info.duration_s == pytest.approx(6.0, abs=0.05)
    assert _integrated_lufs(film) == pytest.approx(-16.0, abs=1.0)
    assert meta["loudness_lufs"] == pytest.approx(-16.0, abs=1.0)


def test_loudness_target_comes_from_the_storyboard(tmp_path: Path) -> None:
    film, _ = _film(
        tmp_path,
        {
            "segments": [{"id": "a", "prompt": "x", "frames": 8, "fps": 2, "audio": str(tone(tmp_path / "t.wav", 500, 4, -20))}],
            "audio": {"loudness_lufs": -23},
        },
    )
    assert _integrated_lufs(film) == pytest.approx(-23.0, abs=1.0)


def test_music_is_ducked_under_narration(tmp_path: Path) -> None:
    voice = tone(tmp_path / "voice.wav", 1000, 1.5, -6)
    film, _ = _film(
        tmp_path,
        {
            "segments": [
                {"id": "a", "prompt": "x", "frames": 4, "fps": 2},
                {"id": "b", "prompt": "y", "frames": 4, "fps": 2, "audio": str(voice)},
            ],
            "audio": {"music": str(tone(tmp_path / "bed.wav", 220, 4.0, -10))},
        },
    )
    alone, under_voice = _band_level_db(film, 220, 0.6, 1.6), _band_level_db(film, 220, 2.6, 3.4)
    assert alone - under_voice > 6  # the bed drops by more than 6 dB while the voice speaks
    assert _band_level_db(film, 1000, 2.6, 3.4) > under_voice  # and the voice is on top


def test_film_without_sound_has_no_audio_stream(tmp_path: Path) -> None:
    film, meta = _film(tmp_path, {"segments": [{"id": "a", "prompt": "x", "frames": 4, "fps": 2}]})
    assert not probe(film).has_audio
    assert meta["has_audio"] is False
    assert meta["loudness_lufs"] is None


def test_narration_without_espeak_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"segments\[1\]\.narration needs espeak-ng"):
        _film(
            tmp_path,
            {
                "segments": [
                    {"id": "a", "prompt": "x", "frames": 4, "fps": 2},
                    {"id": "b", "prompt": "y", "frames": 4, "fps": 2, "narration": "Hallo"},
                ]
            },
        )


def _espeak_stand_in(tmp_path: Path) -> Path:
    stand_in = tmp_path / "espeak-ng"  # stand-in: espeak-ng's command line (-v VOICE -w OUT --stdin), a tone for speech
    stand_in.write_text(
        '#!/bin/sh\nwhile [ $# -gt 0 ]; do case "$1" in -w) out="$2"; shift;; -v) voice="$2"; shift;; esac; shift; done\n'
        f'printf \'%s|%s\' "$voice" "$(cat)" > "$out.said"\n'
        f"exec '{EXE}' -hide_banner -loglevel error -y -f lavfi -i sine=frequency=700:duration=1 \"$out\"\n"
    )
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    return stand_in


def test_speech_tag_is_narrated_and_kept_out_of_the_picture_prompt(tmp_path: Path) -> None:
    """Speech and sound tags: <S>...<E> is spoken (espeak-ng stand-in), <AUDCAP>...<ENDAUDCAP> goes to the spec;
    neither is pictured."""
    from reelforge_shared.specs import render_spec

    prompt = "The man raises his glass. He says <S>Prost, auf den Baum!<E>. <AUDCAP>wind in the leaves<ENDAUDCAP>."
    data = {"segments": [{"id": "a", "prompt": prompt, "frames": 4, "fps": 2}], "audio": {"voice": "de"}}
    spec = render_spec(parse_storyboard(data), 1)
    assert spec.prompt == "The man raises his glass. He says"
    assert spec.speech == "Prost, auf den Baum!"
    assert spec.audio_caption == "wind in the leaves"
    film, meta = _film(tmp_path, data, espeak=str(_espeak_stand_in(tmp_path)))
    assert (tmp_path / "work" / "narration-001.wav.said").read_text() == "de|Prost, auf den Baum!"
    assert probe(film).has_audio
    assert meta["audio_cues"] == 1
    with pytest.raises(InvalidInput, match=r"segments\[0\]\.narration"):  # speech twice: the tag and the field
        parse_storyboard({"segments": [{"id": "a", "prompt": prompt, "narration": "Hallo"}]})


def test_narration_text_is_spoken_with_espeak_ng_stand_in(tmp_path: Path) -> None:
    stand_in = _espeak_stand_in(tmp_path)
    film, meta = _film(
        tmp_path,
        {
            "segments": [{"id": "a", "prompt": "x", "frames": 4, "fps": 2, "narration": "-- Der Baum wächst."}],
            "audio": {"voice": "de"},
        },
        espeak=str(stand_in),
    )
    assert (tmp_path / "work" / "narration-001.wav.said").read_text() == "de|-- Der Baum wächst."
    assert probe(film).has_audio
    assert meta["audio_cues"] == 1
    assert _integrated_lufs(film) == pytest.approx(-16.0, abs=1.0)
