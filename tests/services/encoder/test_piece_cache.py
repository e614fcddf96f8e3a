"""The film step takes the pieces this encoder stored from its own disk (reelforge_encoder.piece_cache), never stale ones."""

from __future__ import annotations

import gc
import io
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, ffmpeg_exe
from reelforge_encoder.handler import EncoderDeps, handle_film, handle_segment
from reelforge_encoder.piece_cache import PieceCache
from reelforge_shared.events import FilmRequested, ModelInfo, SegmentGenerated
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore

MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)
COLOURS = {1: (200, 30, 30), 2: (30, 30, 200), 3: (30, 200, 30)}


def _board(transition: dict | None = None) -> dict:
    second = {"id": "b", "prompt": "sits", "frames": 4, "fps": 3} | ({"transition": transition} if transition else {})
    return {
        "output": {"width": 160, "height": 90, "fps": 6},
        "segments": [{"id": "a", "prompt": "walks", "frames": 4, "fps": 3}, second],
        "deliverables": {"crops": ["9:16"]},
    }


@dataclass
class CountingStore(ObjectStore):
    """The real store, noting every key it downloads."""

    downloaded: list[str] = field(default_factory=list)

    def get_file(self, bucket: str, key: str, path: Path) -> Path:
        self.downloaded.append(key)
        return super().get_file(bucket, key, path)


def _encode(store: ObjectStore, bucket: str, job: str, deps: EncoderDeps, n: int, colour: int) -> None:
    for i in range(4):
        buffer = io.BytesIO()
        Image.fromarray(np.full((36, 64, 3), COLOURS[colour], np.uint8)).save(buffer, format="PNG")
        store.put_bytes(bucket, Keys.frame(job, n, i), buffer.getvalue(), "image/png")
    generated = SegmentGenerated(
        job_id=job,
        index=n,
        segment_id="ab"[n - 1],
        frames_prefix=Keys.frames(job, n),
        frame_count=4,
        fps=3,
        width=160,
        height=90,
        model=MODEL,
    )
    handle_segment(generated, deps)


def _colours(video: Path, tmp: Path) -> list[tuple[float, float, float]]:
    """Mean RGB of each frame."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True,
        capture_output=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 90, 160, 3)
    return [tuple(f.reshape(-1, 3).mean(axis=0)) for f in frames]


def _deps(store: ObjectStore, settings: CommonSettings, pieces: PieceCache | None) -> EncoderDeps:
    return EncoderDeps(store=store, bucket=settings.work_bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"), pieces=pieces)


def test_the_film_is_joined_from_kept_pieces_without_downloading_them(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    job, bucket = "j-kept", settings.work_bucket
    counting = CountingStore(store.client)
    store.put_json(bucket, Keys.storyboard(job), _board({"type": "dissolve", "duration": 0.5}))
    cache = PieceCache(limit_bytes=1 << 30)
    kept = _deps(counting, settings, cache)
    for n in (1, 2):
        _encode(store, bucket, job, kept, n, n)
    counting.downloaded.clear()
    handle_film(FilmRequested(job_id=job, segment_count=2, version=1), kept)
    pieces = [k for k in counting.downloaded if ".part" in k or ".span-from-" in k]
    assert pieces == [], pieces
    assert cache.size_bytes > 0

    # The same film made by an encoder that kept nothing downloads the pieces, and is the same film.
    counting.downloaded.clear()
    handle_film(FilmRequested(job_id=job, segment_count=2, version=2), _deps(counting, settings, None))
    assert len([k for k in counting.downloaded if ".part" in k or ".span-from-" in k]) >= 4
    v1, v2 = (store.get_bytes(bucket, Keys.film(job, v)) for v in (1, 2))
    assert v1 == v2


def test_a_piece_stored_again_since_is_downloaded_not_taken_from_the_disk(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    """Another encoder encoded segment 2 again (a redelivery) and stored other bytes under its keys: the kept file is stale."""
    job, bucket = "j-stale", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), _board())
    cache = PieceCache(limit_bytes=1 << 30)
    deps = _deps(store, settings, cache)
    for n in (1, 2):
        _encode(store, bucket, job, deps, n, n)  # red, then blue
    # Segment 2's pieces again, green this time, encoded by an encoder that kept nothing here.
    other = _deps(store, settings, None)
    store.remove(bucket, Keys.segment_video(job, 2))
    _encode(store, bucket, job, other, 2, 3)
    counting = CountingStore(store.client)
    handle_film(FilmRequested(job_id=job, segment_count=2), _deps(counting, settings, cache))
    assert Keys.segment_piece(Keys.segment_video(job, 2), 0) in counting.downloaded
    colours = _colours(store.get_file(bucket, Keys.film(job), tmp_path / "film.mp4"), tmp_path)
    r, g, b = colours[-1]
    assert g > r + 60, colours[-1]  # the green segment 2 S3 holds...
    assert g > b + 60, colours[-1]  # ... not the blue one kept on disk


def test_the_cache_keeps_at_most_its_limit(store: ObjectStore, settings: CommonSettings, tmp_path: Path) -> None:
    bucket = settings.work_bucket
    cache = PieceCache(limit_bytes=1500)
    files = []
    for name in ("one", "two"):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(name.encode() * 250)  # 750 bytes each; a third file pushes the first out
        files.append(path)
        cache.keep(f"k/{name}", path, store.put_file(bucket, f"k/{name}", path))
    third = tmp_path / "three.mp4"
    third.write_bytes(b"x" * 700)
    cache.keep("k/three", third, store.put_file(bucket, "k/three", third))
    assert "k/one" not in cache
    assert "k/two" in cache
    assert "k/three" in cache
    assert cache.size_bytes == 750 + 700 <= 1500
    assert len(list(cache.folder.iterdir())) == 2  # the dropped file is gone from the disk too
    counting = CountingStore(store.client)
    assert cache.get_file(counting, bucket, "k/one", tmp_path / "back.mp4").read_bytes() == b"one" * 250
    assert counting.downloaded == ["k/one"]
    assert cache.get_file(counting, bucket, "k/two", tmp_path / "kept.mp4").read_bytes() == b"two" * 250
    assert counting.downloaded == ["k/one"]


def test_the_cache_folder_goes_with_the_cache(store: ObjectStore, settings: CommonSettings, tmp_path: Path) -> None:
    cache = PieceCache(limit_bytes=1 << 20)
    path = tmp_path / "one.mp4"
    path.write_bytes(b"1" * 100)
    cache.keep("k/kept", path, store.put_file(settings.work_bucket, "k/kept", path))
    folder = cache.folder
    assert len(list(folder.iterdir())) == 1
    del cache
    gc.collect()
    assert not folder.exists()  # nothing left in /tmp by an encoder that ended
    closed = PieceCache(limit_bytes=1 << 20)
    closed.close()
    assert not closed.folder.exists()


def test_a_cache_in_a_folder_of_its_own_serves_the_next_encoder(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    """`REELFORGE_PIECE_CACHE_DIR` (a `reelforge run`'s state folder): the encoder of the next run (a new process, a new
    cache over the same folder) joins the film from the pieces the last one kept, and still downloads what changed."""
    job, bucket, folder = "j-again", settings.work_bucket, tmp_path / "pieces"
    store.put_json(bucket, Keys.storyboard(job), _board({"type": "dissolve", "duration": 0.5}))
    first = PieceCache(limit_bytes=1 << 30, keep_in=folder)
    for n in (1, 2):
        _encode(store, bucket, job, _deps(store, settings, first), n, n)
    first.close()  # the run ended: what it kept stays for the next
    del first
    gc.collect()

    counting = CountingStore(store.client)
    again = PieceCache(limit_bytes=1 << 30, keep_in=folder)
    assert again.size_bytes > 0
    handle_film(FilmRequested(job_id=job, segment_count=2), _deps(counting, settings, again))
    assert [k for k in counting.downloaded if ".part" in k or ".span-from-" in k] == []

    # Segment 2 encoded again by an encoder that kept nothing here: its pieces are downloaded, the rest still kept.
    store.remove(bucket, Keys.segment_video(job, 2))
    _encode(store, bucket, job, _deps(store, settings, None), 2, 3)
    counting.downloaded.clear()
    handle_film(FilmRequested(job_id=job, segment_count=2, version=2), _deps(counting, settings, PieceCache(1 << 30, folder)))
    fetched = [k for k in counting.downloaded if ".part" in k]
    assert fetched  # segment 2's pieces (those the dissolve does not cover)
    assert all(k.startswith(Keys.segment_video(job, 2).removesuffix(".mp4")) for k in fetched), fetched


def test_a_cache_folder_reopened_keeps_its_limit_and_drops_what_it_cannot_vouch_for(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    bucket, folder = settings.work_bucket, tmp_path / "pieces"
    cache = PieceCache(limit_bytes=1 << 20, keep_in=folder)
    for name in ("one", "two", "three"):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(name.encode() * 250)
        cache.keep(f"k/{name}", path, store.put_file(bucket, f"k/{name}", path))
    cache.close()
    (folder / "stray.mp4").write_bytes(b"left by an encoder killed between the file and its record")
    smaller = PieceCache(limit_bytes=2000, keep_in=folder)  # room for the last two: the oldest kept goes
    assert "k/one" not in smaller
    assert "k/two" in smaller
    assert "k/three" in smaller
    assert smaller.size_bytes == 750 + 1250
    assert not (folder / "stray.mp4").exists()
    counting = CountingStore(store.client)
    assert smaller.get_file(counting, bucket, "k/three", tmp_path / "back.mp4").read_bytes() == b"three" * 250
    assert counting.downloaded == []
