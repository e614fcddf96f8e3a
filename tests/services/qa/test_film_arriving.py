"""Film QA digests the film's packets while it downloads (``ObjectStore.get_file_reading``): the same digests as from the
file on disk, the file whole afterwards, whether the index comes first (faststart, as the encoder writes the film) or
last (the demuxer seeks ahead to it and back)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from reelforge_qa.segment_film_stats import film_packets, packet_digests
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import ArrivingFile, ObjectStore


def _video(path: Path, movflags: str) -> Path:
    rng = np.random.default_rng(7)
    with av.open(str(path), "w", options={"movflags": movflags} if movflags else {}) as out:
        stream = out.add_stream("libx264", rate=3, options={"g": "4"})
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for _ in range(24):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8), format="bgr24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.mark.parametrize("movflags", ["+faststart", ""])
def test_packets_read_as_the_film_arrives_are_the_files(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path, movflags: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ArrivingFile, "CHUNK", 4096)  # many small arrivals: the demuxer reads ahead of them and back
    video = _video(tmp_path / "film.mp4", movflags)
    store.put_file(settings.work_bucket, "jobs/a/film.mp4", video)
    path, packets = store.get_file_reading(settings.work_bucket, "jobs/a/film.mp4", tmp_path / "got.mp4", film_packets)
    assert path.read_bytes() == video.read_bytes()
    digests, setup = packet_digests(video)
    assert len(digests) == 24
    assert np.array_equal(packets.digests, digests)
    assert (packets.setup, packets.fps) == (setup, 3.0)
