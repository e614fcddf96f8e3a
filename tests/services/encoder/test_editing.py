"""The editing utilities (``reelforge encode speed|...``) on a real 2 s video, 440 Hz tone: durations, pitch by FFT, cues."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from reelforge.cli import app
from reelforge_encoder.editing import cues, srt, webvtt
from reelforge_encoder.ffmpeg import ffmpeg_exe
from reelforge_shared.media import probe
from reelforge_shared.storyboard import parse_storyboard

TONE = 440


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edit") / "film.mp4"
    lavfi = [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=12:duration=2", "-f", "lavfi"]
    tone = ["-i", f"sine=frequency={TONE}:duration=2:sample_rate=44100"]
    codecs = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)]
    subprocess.run([*lavfi, *tone, *codecs], check=True)
    return path


def _edit(*args: object) -> str:
    result = CliRunner().invoke(app, ["encode", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def _sound(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray().reshape(-1, f.samples).mean(axis=0) for f in container.decode(audio=0)])
    return samples, rate


def _pitch(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("factor", [0.25, 2, 4])
def test_speed_changes_the_duration_and_keeps_the_pitch(video: Path, tmp_path: Path, factor: float) -> None:
    out = tmp_path / "speed.mp4"
    _edit("speed", video, factor, "-o", out)
    info = probe(out)
    assert info.duration_s == pytest.approx(2 / factor, abs=0.1)
    assert info.fps == 12
    samples, rate = _sound(out)
    assert len(samples) / rate == pytest.approx(2 / factor, abs=0.1)
    assert _pitch(samples, rate) == pytest.approx(TONE, abs=5)  # a resample would give 440 x factor


def test_speed_outside_its_range_is_refused_naming_the_limit(video: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["encode", "speed", str(video), "5", "-o", str(tmp_path / "x.mp4")])
    assert result.exit_code == 2
    assert "0.25 to 4.0" in result.output
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("fmt, suffix", [("mp3", ".mp3"), ("aac", ".m4a"), ("wav", ".wav")])
def test_audio_is_extracted_whole(video: Path, tmp_path: Path, fmt: str, suffix: str) -> None:
    out = tmp_path / f"sound{suffix}"
    _edit("audio", video, "-o", out, "--format", fmt)
    samples, rate = _sound(out)
    assert len(samples) / rate == pytest.approx(2, abs=0.06)
    assert _pitch(samples, rate) == pytest.approx(TONE, abs=5)


def test_frames_loop_and_trim(video: Path, tmp_path: Path) -> None:
    _edit("frames", video, "-o", tmp_path / "stills", "--fps", 2, "--format", "png")
    stills = sorted((tmp_path / "stills").glob("*.png"))
    assert [s.name for s in stills] == ["0001.png", "0002.png", "0003.png", "0004.png"]
    _edit("loop", video, 3, "-o", tmp_path / "loop.mp4")
    assert probe(tmp_path / "loop.mp4").frame_count == 3 * 24
    _edit("trim", video, "--start", 0.5, "--end", 1.5, "-o", tmp_path / "trim.mp4")
    trimmed = probe(tmp_path / "trim.mp4")
    assert trimmed.frame_count == 12
    assert trimmed.has_audio
    assert len(_sound(tmp_path / "trim.mp4")[0]) / 44100 == pytest.approx(1.0, abs=0.05)


BOARD = {
    "segments": [
        {"id": "a", "prompt": "walks <S>Hello there<E>", "frames": 6, "fps": 6},
        {"id": "b", "prompt": "looks", "frames": 3, "fps": 6},
        {"id": "c", "prompt": "sits", "frames": 3, "fps": 6, "narration": "The  end."},
    ]
}


def test_subtitle_cues_are_the_spoken_segments_times(tmp_path: Path) -> None:
    found = cues(parse_storyboard(BOARD))
    assert [(c.start_s, c.end_s, c.text) for c in found] == [(0.0, 1.0, "Hello there"), (1.5, 2.0, "The end.")]
    assert srt(found) == "1\n00:00:00,000 --> 00:00:01,000\nHello there\n\n2\n00:00:01,500 --> 00:00:02,000\nThe end.\n\n"
    assert webvtt(found).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello there\n")


def test_subtitles_as_a_soft_track_and_burnt_in(video: Path, tmp_path: Path) -> None:
    import json

    board = tmp_path / "storyboard.json"
    board.write_text(json.dumps(BOARD))
    _edit("subtitles", board, "-o", tmp_path / "film.vtt")
    assert "00:00:01.500 --> 00:00:02.000\nThe end." in (tmp_path / "film.vtt").read_text()
    _edit("subtitles", board, "-o", tmp_path / "soft.mp4", "--video", video)
    with av.open(str(tmp_path / "soft.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio", "subtitle"]
        texts = [bytes(p) for p in container.demux(container.streams.subtitles[0]) if p.size]
    assert any(b"Hello there" in t for t in texts)
    assert any(b"The end." in t for t in texts)
    # Burnt in: on a flat grey picture the text shows while its cue lasts and nowhere else.
    grey_film = tmp_path / "grey.mp4"
    lavfi = [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "color=c=gray:size=320x180:rate=12:duration=2"]
    subprocess.run([*lavfi, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(grey_film)], check=True)
    _edit("subtitles", board, "-o", tmp_path / "burnt.mp4", "--video", grey_film, "--burn")

    def grey(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            return np.stack([f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)])

    plain, burnt = grey(grey_film), grey(tmp_path / "burnt.mp4")
    changed = np.abs(plain - burnt).max(axis=(1, 2))
    assert changed[:12].min() > 60
    assert changed[12:18].max() < 10
    assert changed[18:].min() > 60  # cues at 0..1 s, 1.5..2 s
