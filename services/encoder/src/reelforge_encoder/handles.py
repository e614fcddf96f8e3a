"""Handles (``output.handles_s``): a segment rendered with extra frames at its head and tail, the film using the middle.

The generator renders ``frames + 2 x handle_frames`` (``reelforge_shared.specs``). The encoder encodes the whole render
once, split where the handles end (``Span.around``): the middle pieces are the segment's video and the film's pieces
exactly as without handles, so nothing downstream (QA, the film, its joins) sees a handle; the whole render, its
sound laid in at the head's end, is stored beside it (``Keys.segment_handles``) for an editor's timeline, which
references it with the middle as its source range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from reelforge_encoder.audio import AUDIO_KBPS
from reelforge_encoder.ffmpeg import run
from reelforge_encoder.look import segment_rate
from reelforge_shared.storyboard import Segment, Storyboard, handle_frames


@dataclass(frozen=True, slots=True)
class Span:
    """Frames of an encoded segment at its encoded rate: the head handle, the middle the film uses, the tail handle."""

    head: int
    used: int
    tail: int

    @property
    def total(self) -> int:
        return self.head + self.used + self.tail

    def around(self, bounds: list[int]) -> list[int]:
        """Piece bounds of the whole render from the middle's own (``0 .. used``): one more piece at each handle."""
        return ([0] if self.head else []) + [self.head + b for b in bounds] + ([self.total] if self.tail else [])

    def middle(self, pieces: list[Path]) -> list[Path]:
        """The pieces of ``around``'s bounds that the film uses."""
        return pieces[1 if self.head else 0 : len(pieces) - (1 if self.tail else 0)]


def segment_span(board: Storyboard, seg: Segment, frame_count: int, fps: float) -> Span:
    """The span of a render of ``frame_count`` frames at ``fps`` of segment ``seg``, handles included when it has them."""
    total = segment_rate(board, frame_count, fps)[0]
    handle = handle_frames(board, seg)
    if not handle:
        return Span(0, total, 0)
    used = segment_rate(board, seg.frames, fps)[0]  # the middle: the model may fit the handles to its frame-count rule
    head = (total - used) // 2
    return Span(head, used, total - used - head)


def without_head(clip: Path, head_s: float, out: Path, exe: str) -> Path:
    """A model's clip sound (rendered with the handles) from where the film's part of it starts."""
    audio = ffmpeg.input(str(clip)).audio.filter("atrim", start=head_s).filter("asetpts", "PTS-STARTPTS")
    run(audio.output(str(out)), exe, f"clip {out.name}")
    return out


def mux_late(video: Path, sound: Path | None, delay_s: float, out: Path, exe: str) -> Path:
    """The whole render with the segment's sound where its middle starts (silence under the handles)."""
    if sound is None:
        return video
    audio = ffmpeg.input(str(sound)).audio.filter("adelay", delays=round(delay_s * 1000), all=1)
    streams = [ffmpeg.input(str(video)).video, audio]
    run(
        ffmpeg.output(*streams, str(out), vcodec="copy", acodec="aac", audio_bitrate=f"{AUDIO_KBPS}k", movflags="+faststart"),
        exe,
        f"handles {out.name}",
    )
    return out
