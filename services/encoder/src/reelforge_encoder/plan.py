"""Plan, then do: everything the encoder decides about a segment, from its event and the storyboard alone.

``plan_segment`` is pure (no S3, no ffmpeg, no clock): the handler reads the storyboard once, plans,
and then executes the plan (``handler.encode_segment``). What only the frames can say (the
normalisation toward the style's light) is measured by the execution; everything else (rate,
pieces, handles, crops, logo, sound, the transitions to encode as soon as a neighbour exists) is here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from reelforge_encoder.deliverables import crop_name, crop_size
from reelforge_encoder.ffmpeg import Codec, Look
from reelforge_encoder.film_joins import SegmentCut, board_parts, film_cuts, overlaps
from reelforge_encoder.handles import Span, segment_span
from reelforge_encoder.look import film_fps, segment_rate
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import SegmentGenerated
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import Storyboard


def narration_needs_espeak(i: int) -> str:
    return f"segments[{i}].narration needs espeak-ng, which is not installed here; install it or give segments[{i}].audio instead"


def spoken(board: Storyboard, i: int, clip_has_sound: bool) -> str | None:
    """What espeak-ng speaks over segment ``i``: its narration, or its prompt's ``<S>...<E>`` (sound-clips note) unless its clip
    brought sound of its own (a sound model voiced the tag already)."""
    seg = board.segments[i]
    return seg.narration or (None if clip_has_sound else seg.tags.speech)


@dataclass(frozen=True, slots=True)
class SoundPlan:
    """Segment ``index``'s sound: its clip's own audio, then its audio file or the words espeak-ng speaks."""

    index: int  # 1-based
    audio: str | None  # segments[i].audio: a file under the job's folder
    speech: str | None  # spoken by espeak-ng (only without ``audio``)
    voice: str
    duration_s: float

    @property
    def field(self) -> str:
        return f"segments[{self.index - 1}].audio"


def sound_plan(board: Storyboard, i: int, clip_has_sound: bool) -> SoundPlan:
    """Segment ``i`` (0-based)'s sound, as ``audio.segment_sound`` will mix it."""
    seg = board.segments[i]
    speech = None if seg.audio is not None else spoken(board, i, clip_has_sound)
    return SoundPlan(i + 1, seg.audio, speech, board.audio.voice, seg.duration_s)


@dataclass(frozen=True, slots=True)
class Crop:
    name: str  # crop name: 9x16, 1x1
    size: tuple[int, int]


@dataclass(frozen=True, slots=True)
class TransitionPlan:
    """A transition between segment ``outgoing`` and ``outgoing + 1``, encoded from their pieces as soon as both exist.

    ``tail`` and ``head`` are the piece numbers (``Keys.segment_piece``) that the span is made of.
    """

    outgoing: int  # 1-based
    kind: str  # dissolve or fade
    overlap: int  # frames of the film the transition spans
    tail: int  # the outgoing segment's last piece
    head: int = 0  # the incoming segment's first piece

    @property
    def incoming(self) -> int:
        return self.outgoing + 1

    def recipe(self, fps: float, codec: Codec) -> str:
        """What the span's pixels depend on besides its two pieces: part of its key, so a changed recipe is encoded anew."""
        text = json.dumps([self.kind, self.overlap, fps, codec.vcodec, codec.crf, codec.preset, codec.maxrate_kbps])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def key(self, incoming_video: str, outgoing: tuple[int, int], crop: str | None, fps: float, codec: Codec) -> str:
        """Where the span is kept; ``outgoing``: the attempt and take of the segment before the join."""
        return Keys.transition_span(incoming_video, *outgoing, self.recipe(fps, codec), crop)


def transition_plans(board: Storyboard, fps: float) -> list[TransitionPlan]:
    """Every transition of the film that is encoded on its own (a dissolve or fade of two frames or more), when the film is
    joined by copy; none otherwise."""
    cuts = film_cuts(board_parts(board), fps)
    if cuts is None:
        return []
    laps = overlaps(board_parts(board), fps)
    return [
        TransitionPlan(i, board.segments[i].transition.type, laps[i], len(cuts[i - 1].bounds) - 2)
        for i in range(1, len(board.segments))
        if laps[i]
    ]


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """Everything decided about encoding one segment (attempt) before a frame is read."""

    job_id: str
    index: int  # 1-based
    attempt: int
    take: int  # which take of the segment (reelforge_shared.takes; 0 without takes)
    video_key: str
    frames_prefix: str
    frame_count: int  # frames stored (the generator's)
    fps: float  # the generator's rate
    width: int
    height: int
    duration_s: float
    out_frames: int  # frames of the encoded segment (raised to output.fps when that is higher), handles excluded
    out_fps: float
    handles: Span  # the render's frames at ``out_fps``: head handle, the middle the film uses, tail handle
    film_fps: float
    codec: Codec
    look: Look  # the look but its normalisation, which the frames' light decides
    colour_temperature_k: int | None  # normalise toward this light (the style's); None: no normalisation
    cut: SegmentCut | None  # encoded as pieces for a film joined by copy; None: one file
    crops: tuple[Crop, ...]  # each crop's pieces too (only with ``cut``)
    logo: str | None  # burnt into the pieces (only with ``cut``)
    clip_key: str | None  # the model's own audio
    sound: SoundPlan
    transitions: tuple[TransitionPlan, ...]  # transitions into and out of this segment, encoded here when both exist

    @property
    def outputs(self) -> tuple[str | None, ...]:
        """What this segment has pieces of: None for the film itself, then each crop's name."""
        return (None, *(c.name for c in self.crops))


def plan_segment(event: SegmentGenerated, board: Storyboard, codec: Codec, fps: float | None, espeak: bool) -> SegmentPlan:
    """The segment's plan, or a PermanentError naming what cannot be done (a wrong segment id, narration without espeak-ng).

    ``codec`` is the encoder's (the job's ``output.quality`` is applied by the caller), ``fps`` the encoder's configured
    film rate (None: the storyboard's), ``espeak`` whether espeak-ng is installed.
    """
    n = event.index
    if not 1 <= n <= len(board.segments):
        raise PermanentError(f"segment {n} is not in the storyboard's {len(board.segments)} segments")
    seg = board.segments[n - 1]
    if seg.id != event.segment_id:
        raise PermanentError(f"segment {n} is {seg.id!r} in the storyboard, the event says {event.segment_id!r}")
    sound = sound_plan(board, n - 1, event.audio_key is not None)
    if sound.speech is not None and not espeak:
        raise PermanentError(narration_needs_espeak(n - 1))  # refused now rather than after the whole film is rendered
    film_rate = fps or film_fps(board)
    out_fps = segment_rate(board, event.frame_count, event.fps)[1]
    handles = segment_span(board, seg, event.frame_count, event.fps)
    cuts = film_cuts(board_parts(board), film_rate)
    cut = cuts[n - 1] if cuts is not None and out_fps == film_rate else None
    interpolate = board.output.fps if board.output.fps and board.output.fps > seg.fps else None
    size = (board.output.width, board.output.height)
    return SegmentPlan(
        job_id=event.job_id,
        index=n,
        attempt=event.attempt,
        take=event.take,
        video_key=Keys.segment_video(event.job_id, n, event.attempt, event.take),
        frames_prefix=event.frames_prefix,
        frame_count=event.frame_count,
        fps=event.fps,
        width=event.width,
        height=event.height,
        duration_s=seg.duration_s,
        out_frames=handles.used,
        out_fps=out_fps,
        handles=handles,
        film_fps=film_rate,
        codec=codec,
        look=Look(grade=board.style.grade, fps=interpolate, interpolation=board.output.interpolation),
        colour_temperature_k=board.style.color_temperature_k,
        cut=cut,
        crops=tuple(Crop(crop_name(r), crop_size(*size, r)) for r in board.deliverables.crops) if cut else (),
        logo=board.deliverables.logo if cut else None,
        clip_key=event.audio_key,
        sound=sound,
        transitions=tuple(t for t in transition_plans(board, film_rate) if cut and n in (t.outgoing, t.incoming)),
    )
