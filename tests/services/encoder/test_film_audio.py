"""Sound through the film joined by copy (issue 11, point 5): a segment that brings its own audio (a sound model's, a
the sound-clips note clip with speech and effects, an audio file) keeps it in its segment MP4 and in the film, at its own time;
a silent segment is silence there. The pictures are still joined by copy: same frame count, monotonic timestamps,
a keyframe at every segment start. Tones of distinct pitches stand in for each segment's sound and are found again
by frequency in the decoded film.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, FilmPart, ffmpeg_exe
from reelforge_encoder.film_assembly import make_film
from reelforge_encoder.film_joins import compile_film
from reelforge_encoder.handler import EncoderDeps, handle_film, handle_segment
from reelforge_shared.events import FilmRequested, ModelInfo, SegmentGenerated
from reelforge_shared.media import probe
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from support.media import tone

EXE = ffmpeg_exe()
LAVFI = [EXE, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
CODEC = Codec(EXE, preset="ultrafast")
MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)
LEAN = {"crops": [], "thumbnail": False}
TONES = {1: 500, 3: 1200, 4: 2000}  # segment -> its sound's pitch; segment 2 is silent


def _audio(path: Path) -> tuple[np.ndarray, int, float]:
    """Mono samples, their rate and the video stream's duration."""
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray().reshape(-1, f.samples).mean(axis=0) for f in container.decode(audio=0)])
    info = probe(path)
    return samples, rate, info.frame_count / info.fps


def _pitch_level(samples: np.ndarray, rate: int, start_s: float, end_s: float) -> dict[int, float]:
    """Level (dB) of every segment's pitch in the window."""
    window = samples[int(start_s * rate) : int(end_s * rate)]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window)))) / len(window)
    freqs = np.fft.rfftfreq(len(window), 1 / rate)
    return {hz: float(20 * np.log10(spectrum[(freqs > hz - 30) & (freqs < hz + 30)].max() + 1e-12)) for hz in TONES.values()}


def _assert_each_segment_is_heard_at_its_time(film: Path, seconds: float) -> None:
    samples, rate, video_s = _audio(film)
    assert len(samples) / rate == pytest.approx(video_s, abs=0.03)  # the sound lasts as long as the pictures
    for n in range(1, 5):
        levels = _pitch_level(samples, rate, (n - 1) * seconds + 0.7, n * seconds - 0.7)  # away from the fades
        if n in TONES:
            own = levels.pop(TONES[n])
            assert own > max(levels.values()) + 30, (n, own, levels)  # its own pitch, the others far below
        else:
            assert max(levels.values()) < -70, (n, levels)  # a silent segment is silence


def _frames(path: Path) -> tuple[list[int], set[int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    pts = sorted(p for p, _ in packets)
    order = {p: i for i, p in enumerate(pts)}
    return pts, {order[p] for p, key in packets if key}


def test_segments_keep_their_sound_through_the_film_joined_by_copy(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    job, bucket = "j-sound", settings.work_bucket
    effects = tone(tmp_path / "effects.wav", TONES[4], 3.0)  # an audio file, longer than its segment: cut
    effects_key = Keys.job_input(job, "effects.wav")  # media a storyboard names is the job's own (workers open nothing else)
    store.put_file(bucket, effects_key, effects)
    board = {
        "output": {"width": 160, "height": 90},
        "segments": [
            {"id": "a", "prompt": "x", "frames": 6, "fps": 3},
            {"id": "b", "prompt": "x", "frames": 6, "fps": 3, "transition": {"type": "dissolve", "duration": 1.0}},
            {"id": "c", "prompt": "x <S>Hallo<E>", "frames": 6, "fps": 3},  # the model voiced the tag: no espeak-ng here
            {
                "id": "d",
                "prompt": "x",
                "frames": 6,
                "fps": 3,
                "transition": {"type": "fade", "duration": 1.0},
                "audio": effects_key,
            },
        ],
        "deliverables": LEAN,
    }
    store.put_json(bucket, Keys.storyboard(job), board)
    deps = EncoderDeps(store=store, bucket=bucket, codec=CODEC)
    encoded = []
    for n in range(1, 5):
        for i in range(6):
            buffer = io.BytesIO()
            Image.fromarray(np.full((36, 64, 3), 40 * n + 4 * i, np.uint8)).save(buffer, format="PNG")
            store.put_bytes(bucket, Keys.frame(job, n, i), buffer.getvalue(), "image/png")
        audio_key = None
        if n in (1, 3):  # a sound model's audio, stored by the generator beside the frames
            audio_key = Keys.segment_audio(job, n)
            store.put_file(bucket, audio_key, tone(tmp_path / f"clip{n}.wav", TONES[n], 2.5))
        [event] = handle_segment(
            SegmentGenerated(
                job_id=job,
                index=n,
                segment_id=board["segments"][n - 1]["id"],
                frames_prefix=Keys.frames(job, n),
                frame_count=6,
                fps=3,
                width=160,
                height=90,
                model=MODEL,
                audio_key=audio_key,
            ),
            deps,
        )
        encoded.append(event)
        assert store.exists(bucket, Keys.segment_thumbnail(Keys.segment_video(job, n)))
    assert [e.has_audio for e in encoded] == [True, False, True, True]
    segment = probe(store.get_file(bucket, Keys.segment_video(job, 1), tmp_path / "s1.mp4"))
    assert segment.has_audio
    assert segment.frame_count == 6
    assert segment.duration_s == pytest.approx(2.0, abs=0.04)
    assert not probe(store.get_file(bucket, Keys.segment_video(job, 2), tmp_path / "s2.mp4")).has_audio

    handle_film(FilmRequested(job_id=job, segment_count=4), deps)
    film = store.get_file(bucket, Keys.film(job), tmp_path / "film.mp4")
    info = probe(film)
    assert info.has_audio
    assert info.frame_count == 24
    assert info.duration_s == pytest.approx(8.0, abs=0.04)
    _assert_each_segment_is_heard_at_its_time(film, 2.0)
    pts, keys = _frames(film)
    assert all(a < b for a, b in zip(pts, pts[1:], strict=False))
    # Keyframes: the cuts' incoming segments (0, 12) and the transition spans (6 - 2 = 4 into b, 18 - 2 = 16 into d).
    assert {0, 4, 12, 16} <= keys
    meta = store.get_json(bucket, Keys.film_meta(job))
    assert meta["has_audio"]
    assert meta["audio_cues"] == 3


def test_clips_with_their_own_sound_keep_it_when_the_film_is_made_from_the_files(tmp_path: Path) -> None:
    """``reelforge encode``'s way: clip files (the sound-clips note's, speech and effects in them) joined with a dissolve."""
    clips = []
    for n in range(1, 5):
        clip = tmp_path / f"clip{n}.mp4"
        cmd = [*LAVFI, f"color=c=0x{30 * n:02x}{30 * n:02x}40:s=64x36:r=4:d=2"]
        if n in TONES:
            cmd += ["-f", "lavfi", "-i", f"sine=frequency={TONES[n]}:duration=2", "-c:a", "aac"]
        subprocess.run([*cmd, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(clip)], check=True)
        clips.append(clip)
    board = parse_storyboard(
        {
            "output": {"width": 160, "height": 90},
            "deliverables": LEAN,
            "segments": [
                {"id": "a", "prompt": "x <S>Prost!<E>", "frames": 8, "fps": 4},  # the clip speaks: espeak-ng is not asked
                {"id": "b", "prompt": "x", "frames": 8, "fps": 4},
                {"id": "c", "prompt": "x", "frames": 8, "fps": 4, "transition": {"type": "dissolve", "duration": 1.0}},
                {"id": "d", "prompt": "x", "frames": 8, "fps": 4},
            ],
        }
    )
    work = tmp_path / "work"
    work.mkdir()
    result = make_film(board, clips, work, CODEC, 4, lambda field, ref: Path(ref), None)
    info = probe(result.film)
    assert info.frame_count == 32
    assert info.duration_s == pytest.approx(8.0, abs=0.04)
    _assert_each_segment_is_heard_at_its_time(result.film, 2.0)
    _, keys = _frames(result.film)
    assert {0, 8, 14, 24} <= keys  # cuts at 8 and 24, the dissolve's span from 16 - 2


def test_a_dissolve_after_an_earlier_transition_runs_forwards(tmp_path: Path) -> None:
    """The one-graph recipe held a frame back here (levels 96, 103, 96, 103, 109); the film now has one recipe."""
    parts = []
    for n, level in enumerate((40, 120, 200)):
        clip = tmp_path / f"flat{n}.mp4"
        grey = f"color=c=0x{level:02x}{level:02x}{level:02x}:s=64x36:r=3:d=2"
        subprocess.run([*LAVFI, grey, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True)
        parts.append(FilmPart(clip, 6, 3, "dissolve" if n else "cut", 2.0 if n else 0.0))
    film = compile_film(parts, 3, 160, 90, tmp_path / "film.mp4", CODEC)
    with av.open(str(film)) as container:
        levels = [float(f.to_ndarray(format="gray").mean()) for f in container.decode(video=0)]
    assert len(levels) == 18
    assert all(b >= a - 1.0 for a, b in zip(levels, levels[1:], strict=False)), [round(v) for v in levels]


def test_two_silent_segments_of_one_length_beside_a_sounding_one(tmp_path: Path) -> None:
    """Two equal silences used to be one ffmpeg-python node with two outputs, which ffmpeg refuses (the film failed)."""
    from reelforge_encoder.audio import lay_end_to_end

    sound = tone(tmp_path / "tone.wav", TONES[1], 1.0)
    voice = lay_end_to_end([None, sound, None], [0.0, 1.0, 2.0, 3.0], [(0, 0), (0.1, 0.1), (0, 0)], tmp_path / "v.wav", EXE)
    with av.open(str(voice)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray().reshape(-1, f.samples).mean(axis=0) for f in container.decode(audio=0)])
    assert len(samples) == 3 * rate
    quiet, loud = np.abs(samples[: rate // 2]).max(), np.abs(samples[rate + rate // 4 : rate + 3 * rate // 4]).max()
    assert quiet < 1e-4 < 0.02 < loud
    assert np.abs(samples[-rate // 2 :]).max() < 1e-4
