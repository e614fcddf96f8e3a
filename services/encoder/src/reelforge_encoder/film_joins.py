"""The film by stream copy: segments encoded once are joined with the concat demuxer; only transitions are re-encoded.

Every segment is encoded at the film's rate, once, as *pieces* (``ffmpeg.encode_pieces``): each
piece its own MP4 that starts on an IDR, with the same codec settings and MP4 timescale. A segment
is cut into pieces where a transition begins or ends in it:

- ``h`` frames in, where the dissolve or fade into it ends (``h = P // 2`` for P frames);
- ``P - h`` frames before its end, where the dissolve or fade out of it starts.

A transition of P frames spans the film frames ``[T - (P - h), T + h)`` around the incoming
segment's start ``T``: the outgoing segment's last ``P - h`` frames and ``h`` clones of its last
frame, cross-faded with ``P - h`` clones of the incoming segment's first frame and its first ``h``
frames: the two holds pay for the overlap, so the film lasts exactly the sum of its segments. Each
span is a short file of its own made from the two pieces beside it, and the film is the list
``piece, span, piece, ...`` joined by copy: no frame outside a transition is decoded or encoded
again. A GOP also starts ``JOIN_LEAD`` frames before each segment's end, so film QA decodes a join
from there.

``compile_film`` is the same join from whole segment files that were not encoded for it (another
rate or size, ``reelforge encode``'s clips, segments over the size budget): each is encoded again
as pieces first. There is no other film recipe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from reelforge_encoder.ffmpeg import (
    _XFADE,
    Codec,
    FilmPart,
    concat_copy,
    encode_pieces,
    film_frames,
    keyframe_args,
    overlay_logo,
    rate,
    run,
)
from reelforge_encoder.look import segment_rate
from reelforge_shared.storyboard import Storyboard

JOIN_LEAD = 8  # frames before a segment's end that start a GOP: film QA decodes the joins from there


def overlaps(parts: list[FilmPart], fps: float) -> list[int]:
    """Frames of the transition into each part (0: a cut); shorter than two frames is a cut."""
    found = [round(p.transition_s * fps) if p.transition in _XFADE else 0 for p in parts]
    return [o if o >= 2 and i else 0 for i, o in enumerate(found)]


@dataclass(frozen=True, slots=True)
class SegmentCut:
    """How one segment is encoded for the film: piece bounds (frames) and which pieces a transition takes."""

    count: int
    overlap_in: int
    overlap_out: int

    @property
    def bounds(self) -> list[int]:
        marks = {0, self.overlap_in // 2, self.count - (self.overlap_out - self.overlap_out // 2), self.count}
        return sorted(k for k in marks if 0 <= k <= self.count)

    @property
    def pieces(self) -> int:
        return len(self.bounds) - 1

    @property
    def keyframes(self) -> list[int]:
        return [self.count - JOIN_LEAD] if self.count > JOIN_LEAD else []

    @property
    def valid(self) -> bool:
        return self.overlap_in // 2 <= self.count - (self.overlap_out - self.overlap_out // 2)

    def roles(self) -> list[str]:
        """``head`` (into the incoming transition), ``body`` (copied), ``tail`` (into the outgoing one), per piece."""
        names = (["head"] if self.overlap_in // 2 > 0 else []) + ["body"] + (["tail"] if self.overlap_out else [])
        if len(names) != len(self.bounds) - 1:  # an empty body: the transitions meet
            names.remove("body")
        return names


def film_cuts(parts: list[FilmPart], fps: float) -> list[SegmentCut] | None:
    """Each segment's cut, or None when the segments cannot be joined by copy (a rate differs, transitions overlap)."""
    if any(abs(p.fps - fps) > 1e-6 for p in parts):
        return None  # a slower segment holds frames in the film: that needs a decode
    cuts = _cuts(parts, fps)
    return cuts if all(c.valid for c in cuts) else None


def _cuts(parts: list[FilmPart], fps: float) -> list[SegmentCut]:
    counts, laps = film_frames(parts, fps), overlaps(parts, fps)
    return [SegmentCut(n, laps[i], laps[i + 1] if i + 1 < len(parts) else 0) for i, n in enumerate(counts)]


def board_parts(board: Storyboard, paths: list[Path] | None = None) -> list[FilmPart]:
    paths = paths or [Path()] * len(board.segments)
    return [
        FilmPart(path, *segment_rate(board, seg.frames, seg.fps), seg.transition.type, seg.transition.duration)
        for path, seg in zip(paths, board.segments, strict=True)
    ]


def encode_span(tail: Path, head: Path, kind: str, overlap: int, fps: float, out: Path, codec: Codec) -> Path:
    """The transition's P frames: the outgoing tail held, the incoming head led in, cross-faded."""
    half = overlap // 2
    tb = str(1 / Fraction(rate(fps)))
    a = ffmpeg.input(str(tail)).video.filter("settb", tb).filter("tpad", stop_mode="clone", stop=half)
    b = ffmpeg.input(str(head)).video.filter("settb", tb).filter("tpad", start_mode="clone", start=overlap - half)
    span = ffmpeg.filter([a, b], "xfade", transition=_XFADE[kind], duration=overlap / fps, offset=0)
    span = span.filter("trim", end_frame=overlap).filter("setpts", "PTS-STARTPTS")
    run(span.output(str(out), **codec.output_args(fps), **keyframe_args([], fps)), codec.exe, f"transition {out.name}")
    return out


def join_by_copy(
    pieces: Sequence[Sequence[Path | None]],
    parts: list[FilmPart],
    fps: float,
    out: Path,
    codec: Codec,
    spans: dict[int, Path] | None = None,
) -> Path:
    """The film from each segment's pieces at the film's rate (``SegmentCut.bounds``): transitions encoded, the rest copied.

    ``spans`` (the transition into part ``i`` -> its file) were encoded already, as soon as both segments were
    (``handler.encode_segment``): the pieces they were made of may be None.
    """
    cuts = _cuts(parts, fps)
    if not all(c.valid for c in cuts):
        raise ValueError("transitions overlap inside a segment: these segments cannot be joined by copy")
    roles = [dict(zip(cut.roles(), files, strict=True)) for cut, files in zip(cuts, pieces, strict=True)]
    made = spans or {}
    listing: list[Path | None] = []
    for i, cut in enumerate(cuts):
        if cut.overlap_in:
            if i in made:
                listing.append(made[i])
            else:
                tail, head, span = roles[i - 1]["tail"], roles[i]["head"], out.with_name(f"{out.stem}.span{i:03d}.mp4")
                if tail is None or head is None:
                    raise ValueError(f"the transition into part {i} was neither encoded nor given its pieces")
                listing.append(encode_span(tail, head, parts[i].transition, cut.overlap_in, fps, span, codec))
        if "body" in roles[i]:
            listing.append(roles[i]["body"])
    if None in listing:
        raise ValueError("a piece the film copies is missing")
    return concat_copy([p for p in listing if p is not None], out, codec.exe)


def compile_film(
    parts: list[FilmPart], fps: float, width: int, height: int, out: Path, codec: Codec, logo: Path | None = None
) -> Path:
    """The film from whole segment files (any rate and size): each encoded again at the film's rate and size as pieces
    at its cut (the logo burnt in), then joined like segments encoded for it: the film lasts exactly the sum of its
    segments, a slower segment holds its frames."""
    pieces = []
    for i, (part, cut) in enumerate(zip(parts, _cuts(parts, fps), strict=True)):
        video = (
            ffmpeg.input(str(part.path))
            .video.filter("fps", fps=rate(fps))
            .filter("tpad", stop_mode="clone", stop=math.ceil(fps / part.fps) + 1)  # the last frame's whole interval
            .filter("trim", end_frame=cut.count)
            .filter("setpts", "PTS-STARTPTS")
            .filter("scale", width, height, flags="lanczos", out_color_matrix="bt709", out_range="tv")
            .filter("setsar", 1)
        )
        if logo is not None:
            video = overlay_logo(video, logo, width, height)
        segment = out.with_name(f"{out.stem}.segment{i:03d}.mp4")
        pieces.append(encode_pieces(video, cut.bounds, cut.keyframes, fps, segment, codec, f"film segment {i + 1}"))
    return join_by_copy(pieces, parts, fps, out, codec)
