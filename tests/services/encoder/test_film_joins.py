"""The film joined by stream copy (issue 11, point 3) on a real S3 server: segments encoded once as pieces, only the
transitions encoded again, and the film and its crops have the length the one-graph recipe gives, monotonic
timestamps, a keyframe where every segment (or transition) starts, and untouched frames everywhere else."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, FilmPart, ffmpeg_exe
from reelforge_encoder.film_joins import compile_film
from reelforge_encoder.handler import EncoderDeps, handle_film, handle_segment
from reelforge_qa import film_checks
from reelforge_qa.film_checks import SegmentVideo, check_film
from reelforge_qa.segment_film_stats import SegmentFilmStats, packet_digests, segment_film_stats
from reelforge_shared.events import FilmRequested, ModelInfo, SegmentGenerated
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore

MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)
LEVELS = (40, 200, 60, 180)  # one flat grey per segment: a dissolve's frames must lie between two of them
BOARD = {
    "output": {"width": 160, "height": 90},
    "segments": [
        {"id": "a", "prompt": "x", "frames": 6, "fps": 3},
        {"id": "b", "prompt": "x", "frames": 6, "fps": 3, "transition": {"type": "dissolve", "duration": 1.0}},
        {"id": "c", "prompt": "x", "frames": 6, "fps": 3, "transition": {"type": "fade", "duration": 2.0}},
        {"id": "d", "prompt": "x", "frames": 6, "fps": 3},
    ],
    "deliverables": {"crops": ["9:16", "1:1"]},
}


def _frames(path: Path) -> tuple[list[np.ndarray], list[int], list[bool]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    with av.open(str(path)) as container:
        frames = [(f.pts, f.to_ndarray(format="gray")) for f in container.decode(video=0)]
    starts = {pts for pts, key in keys if key}
    return [f for _, f in frames], [pts for pts, _ in frames], [pts in starts for pts, _ in frames]


def test_film_is_joined_by_copy_with_only_transitions_encoded(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, bucket = "j-copy", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), BOARD)
    deps = EncoderDeps(store=store, bucket=bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"))
    for n, level in enumerate(LEVELS, start=1):
        for i in range(6):
            picture = np.full((36, 64, 3), level, np.uint8)
            picture[:, : 8 + 4 * i] = 255 - level  # a bar that grows: every frame differs from the next
            buffer = io.BytesIO()
            Image.fromarray(picture).save(buffer, format="PNG")
            store.put_bytes(bucket, Keys.frame(job, n, i), buffer.getvalue(), "image/png")
        handle_segment(
            SegmentGenerated(
                job_id=job,
                index=n,
                segment_id=BOARD["segments"][n - 1]["id"],
                frames_prefix=Keys.frames(job, n),
                frame_count=6,
                fps=3,
                width=160,
                height=90,
                model=MODEL,
            ),
            deps,
        )
    # b is cut where the dissolve into it ends and where the fade out of it starts: head, body, tail.
    pieces = [store.exists(bucket, Keys.segment_piece(Keys.segment_video(job, 2), j)) for j in range(4)]
    assert pieces == [True, True, True, False]
    # The dissolve and the fade, in the film and its two crops, were encoded as soon as both their segments were.
    spans = [k for k in store.list_keys(bucket, f"{Keys.job(job)}/segments/") if ".span-from-" in k]
    assert len(spans) == 6
    for key in spans:  # the fade's are lost: the film encodes those itself, and the film is the same either way
        if key.startswith(Keys.segment(job, 3)):
            store.remove(bucket, key)
    handle_film(FilmRequested(job_id=job, segment_count=4), deps)

    segments = [store.get_file(bucket, Keys.segment_video(job, n), tmp_path / f"{n}.mp4") for n in range(1, 5)]
    reference = compile_film(
        [
            FilmPart(p, 6, 3, s.get("transition", {}).get("type", "cut"), s.get("transition", {}).get("duration", 0.0))
            for p, s in zip(segments, BOARD["segments"], strict=True)
        ],
        3,
        160,
        90,
        tmp_path / "reference.mp4",
        deps.codec,
    )
    film, pts, key = _frames(store.get_file(bucket, Keys.film(job), tmp_path / "film.mp4"))
    assert len(film) == len(_frames(reference)[0]) == 24
    assert all(a < b for a, b in zip(pts, pts[1:], strict=False))
    # Keyframes: a cut's incoming segment (0, 18), a dissolve's span (6 - 2 = 4; 2 frames of a, 1 of b), a fade's (12 - 3 = 9).
    assert {0, 4, 9, 18} <= {i for i, k in enumerate(key) if k}
    decoded = [_frames(p)[0] for p in segments]
    copied = {
        **{i: decoded[0][i] for i in range(4)},
        **{6 + i: decoded[1][i] for i in range(1, 3)},
        **{12 + i: decoded[2][i] for i in range(3, 6)},
        **{18 + i: decoded[3][i] for i in range(6)},
    }
    for i, frame in copied.items():  # outside the transitions the frames are the segments' own, bit for bit
        assert np.array_equal(film[i], frame), i
    dissolve = [float(film[i][:, 80:].mean()) for i in range(4, 7)]  # right half: no bar, a's 40 going to b's 200
    assert 30 < dissolve[0] < dissolve[1] < dissolve[2] < 200
    assert float(film[12][:, 80:].mean()) < 20  # the fade passes through black between c and d
    for name, width in (("9x16", 50), ("1x1", 90)):
        crop, crop_pts, crop_key = _frames(store.get_file(bucket, f"jobs/{job}/final_{name}.mp4", tmp_path / f"{name}.mp4"))
        assert (len(crop), crop[0].shape[1]) == (24, width)
        assert {0, 4, 9, 18} <= {i for i, k in enumerate(crop_key) if k}

    # Film QA from the segments' kept statistics, decoding the film only around its joins, reads what a
    # full decode reads.
    videos = [
        SegmentVideo(p, s["id"], (), "field", (t := s.get("transition", {})).get("type", "cut"), t.get("duration", 0.0))
        for p, s in zip(segments, BOARD["segments"], strict=True)
    ]
    # Outside the transition spans the film's packets are the segments' own, byte for byte (what film QA relies on).
    film_packets = packet_digests(tmp_path / "film.mp4")[0]
    own_packets = np.concatenate([packet_digests(p)[0] for p in segments])
    assert set(np.flatnonzero(film_packets != own_packets)) <= {4, 5, 6, *range(9, 15)}
    stats = [segment_film_stats(p, 8) for p in segments]
    stats = [SegmentFilmStats.from_bytes(s.to_bytes()) for s in stats]
    assert all(s.descriptor is not None for s in stats)  # kept by segment QA: film QA does not describe them again
    whole = check_film(videos, film=tmp_path / "film.mp4")
    older = [dataclasses.replace(s, descriptor=None) for s in stats]  # kept before descriptors were: described here
    assert check_film(videos, film=tmp_path / "film.mp4", stats=older).model_dump() == whole.model_dump()
    decoded_windows: list[tuple[int, int]] = []
    decode = film_checks.read_windows

    def read_windows(film: Path, windows: list[tuple[int, int]]) -> dict:
        decoded_windows.extend(windows)
        return decode(film, windows)

    monkeypatch.setattr(film_checks, "read_windows", read_windows)
    joins = check_film(videos, film=tmp_path / "film.mp4", stats=stats)
    assert joins.model_dump() == whole.model_dump()
    assert len(joins.boundaries) == 3
    assert joins.fps == 3
    # The cut c -> d is proved by its packets (the segments' own): only the dissolve's and the fade's frames are decoded.
    assert len(decoded_windows) == 2
    assert all(any(lo <= k < hi for lo, hi in decoded_windows) for k in (4, 5, 6, 9, 12, 14))
    # The dissolve's from its span's first frame, not from the window's start: the frames before it are a's own.
    assert sorted(decoded_windows)[0][0] == 4

    # Where the film's packets are not the segments' own (d's, here), every join and every other such frame is decoded.
    decoded_windows.clear()
    stats[3].packets = np.zeros_like(stats[3].packets)
    assert check_film(videos, film=tmp_path / "film.mp4", stats=stats).model_dump() == whole.model_dump()
    assert len(decoded_windows) == 4
    assert decoded_windows[-1] == (23, 24)
