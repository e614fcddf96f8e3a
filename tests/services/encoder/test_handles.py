"""Handles (``output.handles_s``) on a real S3 server: every segment is rendered with extra frames at its head and tail,
the film uses the middle (its length unchanged), and the editor's timeline has the whole render with the middle as its
source range, which an editor can extend into the handles without a re-render."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, ffmpeg_exe
from reelforge_encoder.handler import EncoderDeps, handle_film, handle_segment
from reelforge_gateway.timeline.export import build_timeline
from reelforge_gateway.timeline.sources import from_out, from_store, out_attempt_file
from reelforge_shared.events import FilmRequested, ModelInfo, SegmentGenerated
from reelforge_shared.media import probe
from reelforge_shared.settings import CommonSettings
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import StoryboardInvalid, parse_storyboard

FPS, FRAMES, HANDLE = 6, 6, 3  # handles_s 0.5 at 6 fps: 3 frames at each end
STORYBOARD = {
    "output": {"width": 64, "height": 36, "handles_s": 0.5},
    "segments": [
        {"id": "open", "prompt": "walks", "frames": FRAMES, "fps": FPS},
        {"id": "close", "prompt": "sits", "frames": FRAMES, "fps": FPS, "transition": {"type": "dissolve", "duration": 0.5}},
    ],
}
MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)


def _grey(i: int) -> int:
    return 10 + 15 * i  # each rendered frame its own grey: which frames a video holds is read back from its pixels


def _generated(store: ObjectStore, bucket: str, job: str, n: int, count: int, audio_key: str | None = None) -> SegmentGenerated:
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(np.full((36, 64, 3), _grey(i), np.uint8)).save(buffer, format="PNG")
        store.put_bytes(bucket, Keys.frame(job, n, i), buffer.getvalue(), "image/png")
    seg_id = STORYBOARD["segments"][n - 1]["id"]
    return SegmentGenerated(
        job_id=job,
        index=n,
        segment_id=seg_id,
        frames_prefix=Keys.frames(job, n),
        frame_count=count,
        fps=FPS,
        width=64,
        height=36,
        model=MODEL,
        audio_key=audio_key,
    )


def _loudness(path: Path, start_s: float, end_s: float) -> float:
    """Mean absolute sample of the sound between two times."""
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray().reshape(-1, f.samples).mean(axis=0) for f in container.decode(audio=0)])
    return float(np.abs(samples[round(start_s * rate) : round(end_s * rate)]).mean())


def _greys(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.to_ndarray(format="gray").mean()) for f in container.decode(video=0)]


def test_handles_are_bounded_and_rendered() -> None:
    board = parse_storyboard(STORYBOARD)
    assert render_spec(board, 1).frames == FRAMES + 2 * HANDLE
    with pytest.raises(StoryboardInvalid, match=r"output\.handles_s"):
        parse_storyboard({**STORYBOARD, "output": {"handles_s": 9}})


def test_the_film_uses_the_middle_and_the_timeline_has_the_whole_render(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    job, bucket = "j-handles", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), STORYBOARD)
    deps = EncoderDeps(store=store, bucket=bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"))
    rendered = FRAMES + 2 * HANDLE
    # The first shot's model made sound over the whole render: a tone exactly under the middle, silence under the handles.
    clip, head_s = tmp_path / "clip.wav", HANDLE / FPS
    tone = f"aevalsrc=if(between(t\\,{head_s}\\,{head_s + FRAMES / FPS})\\,0.5*sin(2*PI*440*t)\\,0):s=48000:d={rendered / FPS}"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", tone, str(clip)], check=True)
    store.put_file(bucket, Keys.segment_audio(job, 1), clip, "audio/wav")
    for n in (1, 2):
        audio = Keys.segment_audio(job, 1) if n == 1 else None
        [encoded] = handle_segment(_generated(store, bucket, job, n, rendered, audio), deps)
        assert (encoded.frame_count, encoded.duration_s) == (FRAMES, FRAMES / FPS)  # QA and the film see the middle
    video = store.get_file(bucket, Keys.segment_video(job, 1), tmp_path / "segment.mp4")
    whole = store.get_file(bucket, Keys.segment_handles(Keys.segment_video(job, 1)), tmp_path / "handles.mp4")
    # The segment media is longer by 2 x the handles; the segment's video is its middle, frame for frame.
    assert (probe(whole).frame_count, probe(video).frame_count) == (rendered, FRAMES)
    assert np.allclose(_greys(whole), [_grey(i) for i in range(rendered)], atol=4)
    assert np.allclose(_greys(video), [_grey(i) for i in range(HANDLE, HANDLE + FRAMES)], atol=4)
    # Its sound starts with the middle in the segment, and after the head handle in the whole render.
    sound = store.get_file(bucket, Keys.segment_sound(Keys.segment_video(job, 1)), tmp_path / "sound.flac")
    assert _loudness(sound, 0, 0.2) > 0.05
    assert _loudness(whole, 0, head_s - 0.1) < 0.005 < 0.05 < _loudness(whole, head_s + 0.1, head_s + 0.3)

    # The film's length is that of its segments without handles (joined by copy from the middle pieces).
    [film] = handle_film(FilmRequested(job_id=job, segment_count=2), deps)
    assert film.frame_count == 2 * FRAMES
    greys = _greys(store.get_file(bucket, Keys.film(job), tmp_path / "final.mp4"))
    assert np.allclose(greys[:4], [_grey(i) for i in range(HANDLE, HANDLE + 4)], atol=4)  # before the dissolve
    assert np.allclose(greys[-1], _grey(HANDLE + FRAMES - 1), atol=4)  # the last shot's last used frame

    # The timeline's clips reference the whole render; the trim is their source range, extendable into the handles.
    store.put_json(
        bucket,
        Keys.report(job),
        {
            "job_id": job,
            "film": {"version": 1, "fps": FPS, "width": 64, "height": 36, "frame_count": film.frame_count},
            "segments": [{"index": 1, "attempt": 1}, {"index": 2, "attempt": 1}],
        },
    )
    sourced = from_store(store, bucket, job, 1)
    assert sourced.keys["media/001-open.mp4"] == Keys.segment_handles(Keys.segment_video(job, 1))
    timeline = build_timeline(sourced.cut)
    clips = list(timeline.video_tracks()[0].find_clips())
    assert timeline.duration().to_frames() == 2 * FRAMES
    for clip in clips:
        available = clip.media_reference.available_range
        assert (available.start_time.to_frames(), available.duration.to_frames()) == (0, rendered)
        assert (clip.source_range.start_time.to_frames(), clip.source_range.duration.to_frames()) == (HANDLE, FRAMES)
        longer = otio.opentime.TimeRange(otio.opentime.RationalTime(0, FPS), otio.opentime.RationalTime(rendered, FPS))
        clip.source_range = longer  # an editor extends the cut into both handles: still inside the media
        wanted = clip.source_range
        assert available.start_time <= wanted.start_time
        assert wanted.end_time_exclusive() <= available.end_time_exclusive()
        assert clip.available_range() == available  # OpenTimelineIO reads the media's range from the reference


# Segments at different rates cannot be joined by copy (the slower one holds frames in the film): every segment is
# one file, the film decodes and joins them again. The first at 6 fps, the second at 4 fps (handles of 2 frames).
MIXED_FRAMES, MIXED_FPS, MIXED_HANDLE = 4, 4, 2  # handles_s 0.5 at 4 fps
MIXED = {
    "output": {"width": 64, "height": 36, "handles_s": 0.5},
    "segments": [
        {"id": "open", "prompt": "walks", "frames": FRAMES, "fps": FPS},
        {
            "id": "close",
            "prompt": "sits",
            "frames": MIXED_FRAMES,
            "fps": MIXED_FPS,
            "transition": {"type": "dissolve", "duration": 0.5},
        },
    ],
}


def test_handles_in_a_film_of_segments_at_different_rates_keep_the_middle(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    job, bucket = "j-handles-mixed", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), MIXED)
    deps = EncoderDeps(store=store, bucket=bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"))
    shots = [(1, FRAMES, FPS, HANDLE), (2, MIXED_FRAMES, MIXED_FPS, MIXED_HANDLE)]
    for n, frames, fps, handle in shots:
        assert render_spec(parse_storyboard(MIXED), n).frames == frames + 2 * handle
        generated = _generated(store, bucket, job, n, frames + 2 * handle).model_copy(update={"fps": fps})
        [encoded] = handle_segment(generated, deps)
        assert (encoded.frame_count, encoded.fps, encoded.duration_s) == (frames, fps, frames / fps)
        video = store.get_file(bucket, Keys.segment_video(job, n), tmp_path / f"{n}.mp4")
        whole = store.get_file(bucket, Keys.segment_handles(Keys.segment_video(job, n)), tmp_path / f"{n}.handles.mp4")
        assert (probe(whole).frame_count, probe(video).frame_count) == (frames + 2 * handle, frames)
        assert np.allclose(_greys(whole), [_grey(i) for i in range(frames + 2 * handle)], atol=4)
        assert np.allclose(_greys(video), [_grey(i) for i in range(handle, handle + frames)], atol=4)
        assert not store.exists(bucket, Keys.segment_piece(Keys.segment_video(job, n), 0))  # one file, no pieces

    # The film (at 6 fps, the second shot's frames held) is as long as its segments without handles.
    [film] = handle_film(FilmRequested(job_id=job, segment_count=2), deps)
    assert film.frame_count == FRAMES + round(MIXED_FRAMES * FPS / MIXED_FPS)
    assert film.duration_s == pytest.approx(FRAMES / FPS + MIXED_FRAMES / MIXED_FPS)
    greys = _greys(store.get_file(bucket, Keys.film(job), tmp_path / "final.mp4"))
    assert len(greys) == film.frame_count
    assert np.allclose(greys[:4], [_grey(i) for i in range(HANDLE, HANDLE + 4)], atol=4)  # before the dissolve
    # The second shot at 6 fps after the dissolve: its frames at 0.5, 0.67 and 0.83 s are its used frames 2, 2 and 3
    # (4 fps held), none of its tail handle.
    assert np.allclose(greys[-3:], [_grey(MIXED_HANDLE + k) for k in (2, 2, 3)], atol=4)

    # The timeline's clips reference each whole render (at the film's rate), the middle as their source range.
    report = {"job_id": job, "film": {"version": 1, "fps": FPS, "width": 64, "height": 36, "frame_count": film.frame_count}}
    store.put_json(bucket, Keys.report(job), report | {"segments": [{"index": 1, "attempt": 1}, {"index": 2, "attempt": 1}]})
    clips = list(build_timeline(from_store(store, bucket, job, 1).cut).video_tracks()[0].find_clips())
    for clip, (_, frames, fps, handle) in zip(clips, shots, strict=True):
        available, used = clip.media_reference.available_range, clip.source_range
        seconds = (available.start_time.to_seconds(), available.duration.to_seconds())
        assert seconds == pytest.approx((0, (frames + 2 * handle) / fps))
        assert (used.start_time.to_seconds(), used.duration.to_seconds()) == pytest.approx((handle / fps, frames / fps))


def test_handles_fitted_by_the_model_are_read_from_the_frames_rendered(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    # A model with a 4k + 1 rule rendered 13 frames for the 6 + 2 x 3 asked (reelforge_generator.frame_rule): the middle
    # is still the storyboard's 6, the head handle 3 and the tail 4; the timeline reads them from the generation record.
    job, bucket, rendered = "j-handles-fitted", settings.work_bucket, FRAMES + 2 * HANDLE + 1
    store.put_json(bucket, Keys.storyboard(job), STORYBOARD)
    deps = EncoderDeps(store=store, bucket=bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"))
    for n in (1, 2):
        store.put_json(bucket, Keys.segment_generation(job, n), {"frame_count": rendered, "seed": n})
        [encoded] = handle_segment(_generated(store, bucket, job, n, rendered), deps)
        assert encoded.frame_count == FRAMES
    video = store.get_file(bucket, Keys.segment_video(job, 1), tmp_path / "segment.mp4")
    assert np.allclose(_greys(video), [_grey(i) for i in range(HANDLE, HANDLE + FRAMES)], atol=4)
    [film] = handle_film(FilmRequested(job_id=job, segment_count=2), deps)
    assert film.frame_count == 2 * FRAMES
    report = {"job_id": job, "film": {"version": 1, "fps": FPS, "width": 64, "height": 36, "frame_count": film.frame_count}}
    store.put_json(bucket, Keys.report(job), report | {"segments": [{"index": 1, "attempt": 1}, {"index": 2, "attempt": 1}]})
    for clip in build_timeline(from_store(store, bucket, job, 1).cut).video_tracks()[0].find_clips():
        available = clip.media_reference.available_range
        assert (available.start_time.to_frames(), available.duration.to_frames()) == (0, rendered)
        assert (clip.source_range.start_time.to_frames(), clip.source_range.duration.to_frames()) == (HANDLE, FRAMES)

    # The same from a `reelforge run` output folder, which has no generation record: read from the whole render's frames.
    out = tmp_path / "out"
    (out / "segments").mkdir(parents=True)
    (out / "storyboard.json").write_text(json.dumps(STORYBOARD))
    (out / "report.json").write_text(json.dumps(store.get_json(bucket, Keys.report(job))))
    store.get_file(bucket, Keys.film(job), out / "final.mp4")
    for n in (1, 2):
        video = Keys.segment_video(job, n)
        store.get_file(bucket, video, out_attempt_file(out, n, 1, True))
        store.get_file(bucket, Keys.segment_handles(video), out_attempt_file(out, n, 1, True, handles=True))
    for clip in build_timeline(from_out(out).cut).video_tracks()[0].find_clips():
        assert clip.media_reference.available_range.duration.to_frames() == rendered
        assert (clip.source_range.start_time.to_frames(), clip.source_range.duration.to_frames()) == (HANDLE, FRAMES)
