"""The encoder's handlers on a real S3 server: the storyboard's look and rate reach the segment, the film's
deliverables are stored beside it and listed in its metadata, and a redelivered request re-announces them."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, ffmpeg_exe
from reelforge_encoder.handler import EncoderDeps, handle_film, handle_segment
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import FilmEncoded, FilmRequested, ModelInfo, SegmentEncoded, SegmentGenerated
from reelforge_shared.media import probe
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore

MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)
STORYBOARD = {
    "style": {"color_temperature_k": 5750, "grade": "documentary"},
    "output": {"width": 160, "height": 90, "fps": 6},
    "segments": [
        {"id": "open", "prompt": "walks", "frames": 4, "fps": 3},
        {
            "id": "close",
            "prompt": "sits",
            "frames": 4,
            "fps": 3,
            "transition": {"type": "fade", "duration": 0.5},
            "audio": Keys.job_input("j-film", "close.wav"),
        },
    ],
    "deliverables": {"crops": ["9:16"]},
}


def _deps(store: ObjectStore, settings: CommonSettings, espeak: str | None = None) -> EncoderDeps:
    return EncoderDeps(store=store, bucket=settings.work_bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"), espeak=espeak)


def _generated(
    store: ObjectStore, bucket: str, job: str, n: int, attempt: int = 1, colour: tuple[int, int, int] = (200, 140, 80)
) -> SegmentGenerated:
    for i in range(4):
        buffer = io.BytesIO()
        Image.fromarray(np.full((36, 64, 3), colour, np.uint8)).save(buffer, format="PNG")
        store.put_bytes(bucket, Keys.frame(job, n, i, attempt), buffer.getvalue(), "image/png")
    seg_id = STORYBOARD["segments"][n - 1]["id"]
    return SegmentGenerated(
        job_id=job,
        index=n,
        segment_id=seg_id,
        attempt=attempt,
        frames_prefix=Keys.frames(job, n, attempt),
        frame_count=4,
        fps=3,
        width=160,
        height=90,
        model=MODEL,
    )


def test_segment_gets_the_storyboard_rate_and_look(store: ObjectStore, settings: CommonSettings, tmp_path: Path) -> None:
    job = "j-seg"
    store.put_json(settings.work_bucket, Keys.storyboard(job), STORYBOARD)
    [encoded] = handle_segment(_generated(store, settings.work_bucket, job, 1), _deps(store, settings))
    assert isinstance(encoded, SegmentEncoded)
    assert (encoded.frame_count, encoded.fps, encoded.duration_s) == (
        8,
        6,
        pytest.approx(4 / 3),
    )
    info = probe(store.get_file(settings.work_bucket, encoded.video_key, tmp_path / "s.mp4"))
    assert (info.frame_count, info.fps, info.width) == (8, 6, 160)


def test_segment_with_narration_is_refused_early_without_espeak(store: ObjectStore, settings: CommonSettings) -> None:
    job = "j-say"
    board = {**STORYBOARD, "segments": [{**STORYBOARD["segments"][0], "narration": "Hallo"}]}
    store.put_json(settings.work_bucket, Keys.storyboard(job), board)
    with pytest.raises(PermanentError, match=r"segments\[0\]\.narration needs espeak-ng"):
        handle_segment(_generated(store, settings.work_bucket, job, 1), _deps(store, settings))


def test_film_stores_its_deliverables_beside_it_and_lists_them(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    job, bucket = "j-film", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), STORYBOARD)
    wav = tmp_path / "close.wav"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=500:duration=1", str(wav)], check=True
    )
    store.put_file(bucket, Keys.job_input(job, "close.wav"), wav)  # a storyboard's media: an object the job owns
    deps = _deps(store, settings)
    for n in (1, 2):
        handle_segment(_generated(store, bucket, job, n), deps)
    [film] = handle_film(FilmRequested(job_id=job, segment_count=2), deps)
    assert isinstance(film, FilmEncoded)
    assert (film.frame_count, film.fps, film.duration_s) == (
        16,
        6,
        pytest.approx(8 / 3, abs=0.01),
    )
    meta = store.get_json(bucket, f"{Keys.film(job)}.json")
    assert meta["deliverables"] == {"9x16": f"jobs/{job}/final_9x16.mp4", "thumbnail": f"jobs/{job}/final_thumbnail.jpg"}
    assert meta["has_audio"]
    assert meta["loudness_lufs"] == pytest.approx(-16, abs=1)
    crop = probe(store.get_file(bucket, meta["deliverables"]["9x16"], tmp_path / "c.mp4"))
    assert (crop.width, crop.height, crop.has_audio) == (50, 90, True)
    assert store.exists(bucket, meta["deliverables"]["thumbnail"])

    # A redelivered request re-announces the stored film without encoding it again.
    etag = store.client.stat_object(bucket, Keys.film(job)).etag
    assert handle_film(FilmRequested(job_id=job, segment_count=2), deps)[0].frame_count == 16
    assert store.client.stat_object(bucket, Keys.film(job)).etag == etag


def test_film_is_made_of_the_attempts_the_film_request_names(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    """Which take of a segment was delivered comes with film.requested (the job store's record), not from an object."""
    job, bucket = "j-takes", settings.work_bucket
    board = {**STORYBOARD, "segments": [STORYBOARD["segments"][0]], "deliverables": {}}
    store.put_json(bucket, Keys.storyboard(job), board)
    deps = _deps(store, settings)
    handle_segment(_generated(store, bucket, job, 1, attempt=1, colour=(200, 20, 20)), deps)
    handle_segment(_generated(store, bucket, job, 1, attempt=2, colour=(20, 20, 200)), deps)
    [film] = handle_film(FilmRequested(job_id=job, segment_count=1, version=2, attempts=[2]), deps)
    assert isinstance(film, FilmEncoded)
    assert film.attempts == [2]
    frame = tmp_path / "first.png"
    video = store.get_file(bucket, film.film_key, tmp_path / "film.mp4")
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(video), "-frames:v", "1", str(frame)], check=True)
    red, _, blue = np.asarray(Image.open(frame).convert("RGB")).reshape(-1, 3).mean(axis=0)
    assert blue > red + 60  # attempt 2's blue frames, not attempt 1's red ones
