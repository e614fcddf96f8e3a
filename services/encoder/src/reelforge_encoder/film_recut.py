"""A film version re-cut from an editor's timeline (``FilmEvent.cut``): its entries joined by stream copy from stored renders.

Each entry names a render (segment, attempt, take) and the frames of its media the film uses, handles included: the
render's whole media (``segment.handles.mp4`` when it has handles, else ``segment.mp4``), encoded at the film's rate,
size and logo with closed GOPs, so its packets join the film as they are. The entry is cut into pieces as a segment of
the storyboard's film is (``film_joins.SegmentCut``: a head under the transition into it, a body, a tail under the
transition out of it), and the film is those pieces and the transitions joined by copy (``film_joins.join_by_copy``).

What is encoded again, and nothing else:

- a body's frames before the first keyframe at or after its start and after the last keyframe at or before its end:
  where a cut falls off a keyframe, the part of that one GOP the cut keeps (decoded from the GOP's keyframe, encoded
  as a piece of its own that starts on an IDR). The frames between those keyframes are copied packet for packet;
  an untrimmed segment of a film of cuts is copied whole (its ends are keyframes);
- a head and a tail piece (a few frames under a transition), and the transition from them, as in every film.

The sound: each render's stored sound (it covers the part the storyboard's film uses) moved to the entry's first frame,
silence under a handle, laid end to end at the pictures' times like the storyboard's film.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import ffmpeg

from reelforge_encoder.audio import SAMPLE_RATE
from reelforge_encoder.ffmpeg import Codec, concat_copy, keyframe_args, rate, run
from reelforge_encoder.film_joins import SegmentCut, film_cuts
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import CutEntry
from reelforge_shared.storyboard import Storyboard, Transition


@dataclass(frozen=True, slots=True)
class Source:
    """An entry's render on this machine: its whole media, and its sound (None: silent) starting at frame ``head``."""

    media: Path
    head: int  # frames of the head handle in ``media`` (0 without handles)
    sound: Path | None


def cut_board(board: Storyboard, cut: list[CutEntry], fps: float) -> Storyboard:
    """The storyboard as the cut plays it: its entries as segments in film order, each as long as the entry and at the
    film's rate, with the entry's transition into it. What a segment is (its audio, narration, cast) stays its own."""
    segments = [
        board.segments[e.index - 1].model_copy(
            update={
                "frames": e.source_out - e.source_in,
                "fps": fps,
                "transition": Transition(type=e.transition, duration=e.transition_frames / fps if e.transition_frames else 0),
            }
        )
        for e in cut
    ]
    output = board.output.model_copy(update={"handles_s": 0})
    return board.model_copy(update={"segments": segments, "output": output})


def check_cut(board: Storyboard, cut: list[CutEntry], fps: float) -> list[SegmentCut]:
    """Each entry's pieces, or a PermanentError naming the entry that cannot be joined by copy."""
    for position, e in enumerate(cut, start=1):
        if not 1 <= e.index <= len(board.segments):
            raise PermanentError(f"cut entry {position} names segment {e.index}; the storyboard has {len(board.segments)}")
        if e.source_out <= e.source_in:
            raise PermanentError(f"cut entry {position}: frames {e.source_in}..{e.source_out} are empty")
    from reelforge_encoder.film_joins import board_parts

    cuts = film_cuts(board_parts(cut_board(board, cut, fps)), fps)
    if cuts is None:
        raise PermanentError("the cut's transitions overlap inside an entry, or an entry is not at the film's rate")
    return cuts


def keyframes(media: Path) -> tuple[int, list[int]]:
    """(frames, the frames that start a GOP) of a video's first video stream, read from its packets (nothing decoded)."""
    with av.open(str(media)) as container:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(container.streams.video[0]) if p.size and p.pts is not None]
    order = sorted(pts for pts, _ in packets)
    frame_of = {pts: k for k, pts in enumerate(order)}
    return len(order), sorted(frame_of[pts] for pts, key in packets if key)


def copy_frames(media: Path, first: int, end: int, out: Path, fps: float) -> Path:
    """Frames ``[first, end)`` of ``media``, both ends keyframes (or its end) of closed GOPs, copied packet for packet."""
    with av.open(str(media)) as source:
        stream = source.streams.video[0]
        packets = [p for p in source.demux(stream) if p.size and p.pts is not None]
        order = sorted(int(p.pts or 0) for p in packets)
        kept, offset = set(order[first:end]), order[first]
        options = {"video_track_timescale": str(Fraction(rate(fps)).numerator * 1000), "movflags": "+faststart"}
        with av.open(str(out), "w", format="mp4", options=options) as target:
            copied = target.add_stream_from_template(stream)
            for packet in packets:
                if packet.pts in kept:
                    packet.pts = int(packet.pts or 0) - offset
                    packet.dts = None if packet.dts is None else packet.dts - offset
                    packet.stream = copied
                    target.mux(packet)
    return out


def retime(video: Path, fps: float, out: Path) -> Path:
    """``video`` with its timestamps written anew, packets untouched: frame ``k`` (in display order) at ``k / fps``.

    The concat demuxer offsets each file by the one before; a piece encoded again without B-frame delay (a GOP's few
    frames) before a copied one with it leaves the join's decode times bent and its length off. Its GOPs are closed
    (``Codec``: IDR keyframes), so each packet's place is its GOP's start plus its rank by time inside the GOP; the
    decode times follow the packets' order, as far behind as the deepest reordering needs.
    """
    timescale = Fraction(rate(fps)).numerator * 1000  # the pieces' own (``keyframe_args``)
    tick = Fraction(timescale) / Fraction(rate(fps))
    with av.open(str(video)) as source:
        stream = source.streams.video[0]
        packets = [p for p in source.demux(stream) if p.size and p.pts is not None]
        shown: list[int] = []
        gop: list[int] = []  # pts of the current GOP's packets, in decode order

        for packet in packets:
            if packet.is_keyframe and gop:
                start = len(shown)
                shown.extend(start + r for r in _ranks(gop))
                gop = []
            gop.append(int(packet.pts or 0))
        start = len(shown)
        shown.extend(start + r for r in _ranks(gop))
        delay = max((i - k for i, k in enumerate(shown)), default=0)
        options = {"video_track_timescale": str(timescale), "movflags": "+faststart"}
        with av.open(str(out), "w", format="mp4", options=options) as target:
            copied = target.add_stream_from_template(stream)
            copied.time_base = Fraction(1, timescale)
            for i, (packet, k) in enumerate(zip(packets, shown, strict=True)):
                packet.time_base = Fraction(1, timescale)
                packet.pts, packet.dts, packet.duration = int(k * tick), int((i - delay) * tick), int(tick)
                packet.stream = copied
                target.mux(packet)
    return out


def _ranks(values: list[int]) -> list[int]:
    """Each value's rank among ``values`` (0: the smallest), in their order."""
    order = {v: k for k, v in enumerate(sorted(values))}
    return [order[v] for v in values]


def encode_frames_of(media: Path, first: int, end: int, out: Path, fps: float, codec: Codec) -> Path:
    """Frames ``[first, end)`` of ``media`` decoded and encoded again as a piece of its own (it starts on an IDR)."""
    video = (
        ffmpeg.input(str(media))
        .video.filter("trim", start_frame=first, end_frame=end)
        .filter("setpts", "PTS-STARTPTS")
        .filter("setsar", 1)
    )
    run(video.output(str(out), **codec.output_args(fps), **keyframe_args([], fps)), codec.exe, f"cut piece {out.name}")
    return out


@dataclass(frozen=True, slots=True)
class Piece:
    path: Path
    copied: int  # frames copied packet for packet
    encoded: int  # frames encoded again


def body_piece(media: Path, first: int, end: int, out: Path, fps: float, codec: Codec) -> Piece:
    """Frames ``[first, end)`` of ``media`` as one piece: copied between the keyframes inside, encoded again outside."""
    total, starts = keyframes(media)
    marks = [*starts, total]
    inner_first = next((k for k in marks if k >= first), None)
    inner_end = max((k for k in marks if k <= end), default=None)
    if inner_first is None or inner_end is None or inner_first >= inner_end:
        return Piece(encode_frames_of(media, first, end, out, fps, codec), 0, end - first)
    parts = []
    if first < inner_first:
        parts.append(encode_frames_of(media, first, inner_first, out.with_name(f"{out.stem}.lead.mp4"), fps, codec))
    parts.append(copy_frames(media, inner_first, inner_end, out.with_name(f"{out.stem}.copy.mp4"), fps))
    if inner_end < end:
        parts.append(encode_frames_of(media, inner_end, end, out.with_name(f"{out.stem}.trail.mp4"), fps, codec))
    copied = inner_end - inner_first
    return Piece(concat_copy(parts, out, codec.exe), copied, (end - first) - copied)


def entry_pieces(
    source: Source, entry: CutEntry, cut: SegmentCut, fps: float, work: Path, position: int, codec: Codec
) -> list[Piece]:
    """An entry's pieces at its cut's bounds: the head and tail (under transitions) encoded, the body copied where it can."""
    pieces = []
    for j, (role, (a, b)) in enumerate(zip(cut.roles(), zip(cut.bounds, cut.bounds[1:], strict=False), strict=True)):
        out = work / f"cut{position:03d}.part{j}.mp4"
        first, end = entry.source_in + a, entry.source_in + b
        if role == "body":
            pieces.append(body_piece(source.media, first, end, out, fps, codec))
        else:
            pieces.append(Piece(encode_frames_of(source.media, first, end, out, fps, codec), 0, end - first))
    return pieces


def entry_sound(source: Source, entry: CutEntry, fps: float, out: Path, exe: str) -> Path | None:
    """The entry's sound from its render's: moved so that it starts at the entry's first frame (silence under a handle)."""
    if source.sound is None:
        return None
    shift = (entry.source_in - source.head) / fps  # seconds into the render's sound where the entry starts
    audio = ffmpeg.input(str(source.sound)).audio
    if shift >= 0:
        audio = audio.filter("atrim", start=shift).filter("asetpts", "PTS-STARTPTS")
    else:
        audio = audio.filter("adelay", delays=round(-shift * 1000), all=1)
    run(audio.output(str(out), ar=SAMPLE_RATE), exe, f"sound of {out.name}")
    return out
