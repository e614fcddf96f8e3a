"""The join by stream copy (``concat_copy``) opens its pieces with no decoder (their first frames are not decoded to
probe them) and still gives the very packets ffmpeg's plain concat gives: the same bytes, timestamps and keyframes
(real ffmpeg, real x264 pieces). What it saves is in docs/benchmarks.md, not timed here."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import av
import ffmpeg

from reelforge_encoder.ffmpeg import Codec, concat_copy, encode_pieces, ffmpeg_exe


def _packets(path: Path) -> list[tuple[int | None, int | None, bool, str]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pts, p.dts, p.is_keyframe, hashlib.sha256(bytes(p)).hexdigest()) for p in container.demux(stream) if p.size]


def test_the_join_by_copy_gives_the_packets_of_a_plain_concat(tmp_path: Path) -> None:
    codec = Codec(ffmpeg_exe(), preset="ultrafast")
    # a moving test pattern at 1080p: each piece's first frame is a whole IDR the old join decoded to open the piece
    video = ffmpeg.input("testsrc2=size=1920x1080:rate=3", f="lavfi", t=4).video
    pieces = encode_pieces(video, [0, 3, 6, 9, 12], [], 3.0, tmp_path / "seg.mp4", codec, "test pieces")

    joined = concat_copy(pieces, tmp_path / "joined.mp4", codec.exe)

    listing = tmp_path / "plain.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in pieces))
    plain = tmp_path / "plain.mp4"
    command = [codec.exe, "-v", "error", "-f", "concat", "-safe", "0", "-auto_convert", "0", "-i", str(listing)]
    subprocess.run([*command, "-c", "copy", "-movflags", "+faststart", "-y", str(plain)], check=True)
    assert _packets(joined) == _packets(plain)
    assert len(_packets(joined)) == 12
    assert [k for _, _, k, _ in _packets(joined)] == [True, False, False] * 4
