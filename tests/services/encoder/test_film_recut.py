"""A re-cut film's pieces (issue 19 point 3) with real ffmpeg: a range of a stored render is copied packet for packet
between the keyframes inside it and encoded again only where it starts or ends off a keyframe, and its timestamps are
written anew without touching a packet; a cut whose transitions overlap inside an entry is refused naming it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from reelforge_encoder.ffmpeg import Codec, encode_frames, ffmpeg_exe
from reelforge_encoder.film_recut import body_piece, check_cut, cut_board, keyframes, retime
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import CutEntry
from reelforge_shared.storyboard import parse_storyboard

FPS = 6


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(int) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Codec]:
    """24 frames of a moving test pattern encoded as the encoder encodes a segment: GOPs start at 0, 5, 12 and 20."""
    work = tmp_path_factory.mktemp("recut")
    exe = ffmpeg_exe()
    raw = work / "raw.mp4"
    pattern = f"testsrc2=size=64x36:rate={FPS}:duration=4"
    subprocess.run([exe, "-loglevel", "error", "-f", "lavfi", "-i", pattern, "-vf", "format=yuv420p", str(raw)], check=True)
    codec = Codec(exe=exe, preset="veryfast")
    return encode_frames(raw, FPS, 64, 36, work / "segment.mp4", codec, None, [0, 5, 12, 24], [20]), codec


@pytest.mark.parametrize(
    ("first", "end", "copied"),
    [
        (0, 24, 24),  # the whole render: copied
        (5, 12, 7),  # keyframe to keyframe: copied
        (12, 24, 12),  # keyframe to the end
        (3, 17, 7),  # off a keyframe at both ends: 5..12 copied, 3..5 and 12..17 encoded again
        (5, 22, 15),  # 5..20 copied, 20..22 encoded
        (7, 9, 0),  # inside one GOP: encoded
    ],
)
def test_a_range_is_copied_between_its_keyframes_and_encoded_only_off_them(
    render: tuple[Path, Codec], tmp_path: Path, first: int, end: int, copied: int
) -> None:
    source, codec = render
    assert keyframes(source) == (24, [0, 5, 12, 20])
    piece = body_piece(source, first, end, tmp_path / "piece.mp4", FPS, codec)
    assert (piece.copied, piece.encoded) == (copied, end - first - copied)
    got, want = _frames(piece.path), _frames(source)[first:end]
    assert len(got) == end - first
    assert max(float(np.abs(a - b).mean()) for a, b in zip(got, want, strict=True)) < 3  # the same frames, in order
    if copied == end - first:  # copied: the very same pictures
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    _, starts = keyframes(piece.path)
    assert starts[0] == 0  # the piece starts on a keyframe: the film joins it by copy
    # Its timestamps written anew: the same packets, frame k at k / fps, as long as its frames.
    retimed = retime(piece.path, FPS, tmp_path / "retimed.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(_frames(retimed), got, strict=True))
    with av.open(str(retimed)) as container:
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx((end - first) / FPS)
        times = [float(p.pts * stream.time_base) for p in container.demux(stream) if p.size and p.pts is not None]
    assert sorted(times) == pytest.approx([k / FPS for k in range(end - first)])


def test_a_cut_plays_as_a_storyboard_of_its_entries_and_overlapping_transitions_are_refused() -> None:
    board = parse_storyboard(
        {"segments": [{"id": "a", "prompt": "x", "frames": 6, "fps": FPS}, {"id": "b", "prompt": "y", "frames": 6, "fps": FPS}]}
    )
    cut = [
        CutEntry(index=2, source_in=0, source_out=4),
        CutEntry(index=1, source_in=1, source_out=6, transition="dissolve", transition_frames=4),
    ]
    played = cut_board(board, cut, FPS)
    assert [(s.id, s.frames, s.transition.type) for s in played.segments] == [("b", 4, "cut"), ("a", 5, "dissolve")]
    assert [c.count for c in check_cut(board, cut, FPS)] == [4, 5]
    too_long = [cut[0], cut[1].model_copy(update={"transition_frames": 12})]
    with pytest.raises(PermanentError, match="overlap"):
        check_cut(board, too_long, FPS)
    with pytest.raises(PermanentError, match="cut entry 1 names segment 3"):
        check_cut(board, [CutEntry(index=3, source_in=0, source_out=2)], FPS)
