"""The storyboard: what a production team submits, validated at the edge.

A storyboard is YAML or JSON with a title, a style, an output size, a cast (characters),
locations and segments. A plain JSON list of ``{id, prompt}`` segments is accepted too and
gets the defaults below. Every problem is reported with the path of the failing field
(``segments[2].characters[0]``) and the value, and nothing is published for a bad storyboard.

Every input is bounded before it costs anything:

- :func:`decode_storyboard` reads JSON with the standard library (NaN and Infinity refused) and YAML
  with libyaml, refusing anchors and aliases (a 483-byte YAML of nested aliases expands to
  gigabytes) with the line named, and stopping at a deadline (:mod:`reelforge_shared.bounded_yaml`);
- numbers are finite (``allow_inf_nan=False``) and within static ranges (``fps`` 1-60);
- :class:`StoryboardLimits` holds what an operator may lower (segments per job, frames per segment,
  film seconds, output pixels, characters per field; the gateway's settings), and
  :func:`limit_errors` names the field, the value and the limit of each one passed;
- error messages show a value cut short by :mod:`reprlib`, never ``repr()`` of the whole input.
"""

from __future__ import annotations

import json
import re
import reprlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reelforge_shared.bounded_yaml import AnchorRefused, load_bounded
from reelforge_shared.errors import InvalidInput
from reelforge_shared.takes import MAX_TAKES

MAX_PROMPT_CHARS = 2000  # CLIP reads 77 tokens; 2000 characters is generous and keeps events small
MAX_SEGMENTS = 500
MAX_FRAMES = 1000
MAX_FPS = 60
MAX_ERRORS = 20  # errors listed in one answer; the rest are counted
DEFAULT_FRAMES = 24  # the GPU brief: 24 frames at 3 fps = 8 s per segment
DEFAULT_FPS = 3.0

_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
_Text = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
_Seed = Annotated[int, Field(ge=0, lt=2**32)]
_Crop = Literal["9:16", "1:1"]
_CROPS: tuple[_Crop, ...] = ("9:16", "1:1")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Style(_Strict):
    prompt_prefix: _Text = ""
    negative_prompt: _Text = ""
    lighting: _Text = ""
    color_temperature_k: int | None = Field(
        None, ge=1000, le=15000, description="target light, e.g. 5750; the encoder normalises every segment toward it"
    )
    grade: Literal["action", "romantic", "horror", "documentary"] | None = Field(
        None, description="colour grade preset (contrast, saturation, colour temperature, gamma) applied to every segment"
    )
    takes: int = Field(
        1, ge=1, le=MAX_TAKES, description="renders of every shot, the best by QA in the film (reelforge_shared.takes)"
    )
    cast_sheet: bool = Field(
        True,
        description="render a reference image once for each character and location without reference_image and "
        "condition every segment using it on it (models that take a reference); off: none",
    )


MAX_HANDLES_S = 5.0  # seconds at each end: more is a longer render than most shots


class Output(_Strict):
    width: int = Field(1920, ge=16, le=7680, multiple_of=2)
    height: int = Field(1080, ge=16, le=4320, multiple_of=2)
    fps: float | None = Field(
        None, ge=1, le=120, description="delivery frame rate; slower segments are motion-interpolated up to it, same duration"
    )
    interpolation: Literal["mci", "blend"] = Field(
        "mci", description="how frames are interpolated: motion-compensated (mci) or cross-blended (blend, cheaper)"
    )
    quality: Literal["low", "medium", "high"] | None = Field(
        None, description="encoding quality preset of this job (video API guide); unset: the encoder's REELFORGE_VIDEO_QUALITY"
    )
    handles_s: float = Field(
        0.0,
        ge=0,
        le=MAX_HANDLES_S,
        description="handles: seconds of extra frames rendered before and after every segment; the film uses the middle, "
        "the editor's timeline has the whole render to extend a cut into",
    )


class Audio(_Strict):
    """The film's sound: narration per segment (see Segment), an optional music bed, one loudness."""

    music: str | None = Field(None, max_length=1024, description="music bed, looped to the film's length, ducked under speech")
    voice: str = Field("en", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_+-]+$", description="espeak-ng voice (de, en-us)")
    loudness_lufs: float = Field(-16.0, ge=-40, le=-5, description="integrated loudness of the whole mix (EBU R128)")


class Deliverables(_Strict):
    """What is made from the one master besides the 16:9 film."""

    crops: list[_Crop] = Field(default_factory=lambda: list(_CROPS), max_length=2, description="centre crops")
    thumbnail: bool = Field(True, description="a JPEG still of the film")
    logo: str | None = Field(
        None, max_length=1024, description="image overlaid in the top-left corner of the film and every crop"
    )
    max_film_mb: float = Field(
        500.0, gt=0, le=100_000, description="size budget of each video (the GPU brief: < 500 MB); met by lowering the rate"
    )


class Character(_Strict):
    description: _Text = Field(min_length=1)
    seed: _Seed
    reference_image: str | None = Field(None, max_length=1024, description="path or URL of a reference image")


class Location(_Strict):
    description: _Text = Field(min_length=1)
    seed: _Seed


class Transition(_Strict):
    """How a segment is joined to the one before it."""

    type: Literal["cut", "dissolve", "fade"] = Field("cut", description="fade: through black")
    duration: float = Field(0.0, ge=0, le=10, description="seconds; a dissolve or fade never shortens the film")

    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        return {"type": value, "duration": 0.0 if value == "cut" else 1.0} if isinstance(value, str) else value


SPEECH_TAG = re.compile(r"<S>(.*?)<E>", re.DOTALL)  # the sound-clips note: what the character says
AUDIO_CAPTION_TAG = re.compile(r"<AUDCAP>(.*?)<ENDAUDCAP>", re.DOTALL)  # the sound-clips note: the sound of the scene


@dataclass(frozen=True, slots=True)
class PromptTags:
    """A prompt split by the speech and sound tags: the picture, the speech (``<S>...<E>``) and the sound (``<AUDCAP>...``)."""

    picture: str
    speech: str | None
    audio_caption: str | None


def split_prompt_tags(prompt: str) -> PromptTags:
    """The picture prompt with every tag removed, the speech tags' text joined, the sound captions joined."""
    speech = " ".join(t.strip() for t in SPEECH_TAG.findall(prompt) if t.strip()) or None
    sound = " ".join(t.strip() for t in AUDIO_CAPTION_TAG.findall(prompt) if t.strip()) or None
    picture = AUDIO_CAPTION_TAG.sub(" ", SPEECH_TAG.sub(" ", prompt))
    picture = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s+", " ", picture)).strip()
    picture = re.sub(r"([.,;:!?])(\s*[.,;:!?])+", r"\1", picture)  # "shouts . ." left by a removed tag
    return PromptTags(picture, speech, sound)


class Segment(_Strict):
    id: _Name
    prompt: _Text = Field(min_length=1)
    characters: list[_Name] = Field(default_factory=list, max_length=16)
    location: _Name | None = None
    frames: int = Field(DEFAULT_FRAMES, ge=1, le=MAX_FRAMES)
    fps: float = Field(DEFAULT_FPS, ge=1, le=MAX_FPS)
    transition: Transition = Field(default_factory=Transition, description="into this segment")
    seed: _Seed | None = Field(None, description="overrides the seed derived from cast and location")
    steps: int | None = Field(None, ge=1, le=200, description="denoising steps of this segment; unset: the generator's")
    guidance: float | None = Field(None, ge=0, le=50, description="guidance scale of this segment; unset: the generator's")
    narration: _Text | None = Field(None, min_length=1, description="spoken over the segment with espeak-ng")
    model: str | None = Field(
        None, min_length=1, max_length=1024, description="model id or path of this segment (else the job's, else REELFORGE_MODEL)"
    )
    audio: str | None = Field(
        None, min_length=1, max_length=1024, description="audio file played from the segment's start (instead of narration)"
    )
    takes: int | None = Field(
        None, ge=1, le=MAX_TAKES, description="renders of this shot, the best by QA in the film; unset: style.takes"
    )
    variants: list[Annotated[_Text, Field(min_length=1)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_TAKES - 1,
        description="other prompts for this shot, each rendered as a take beside the prompt's (take 0), scored the same way",
    )
    start_from: Literal["previous"] | None = Field(
        None,
        description="previous: the first frame continues from the last frame of the segment before (rendered after it; "
        "image-to-video models start from that frame, per-frame models take it as their IP-Adapter reference)",
    )

    @property
    def tags(self) -> PromptTags:
        return split_prompt_tags(self.prompt)

    @property
    def spoken(self) -> str | None:
        """What is spoken over the segment: its narration, or the speech tags of its prompt."""
        return self.narration or self.tags.speech

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("transition", mode="before")
    @classmethod
    def _transition_shorthand(cls, value: Any) -> Any:
        return Transition._from_shorthand(value)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


class Storyboard(_Strict):
    title: str = Field("Untitled", max_length=200)
    model: str | None = Field(
        None, min_length=1, max_length=1024, description="model id or path for every segment (unset: REELFORGE_MODEL)"
    )
    style: Style = Field(default_factory=Style)
    output: Output = Field(default_factory=Output)
    characters: dict[_Name, Character] = Field(default_factory=dict)
    locations: dict[_Name, Location] = Field(default_factory=dict)
    segments: list[Segment] = Field(min_length=1, max_length=MAX_SEGMENTS)
    audio: Audio = Field(default_factory=Audio)
    deliverables: Deliverables = Field(default_factory=Deliverables)

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)

    def takes_of(self, seg: Segment) -> int:
        """Takes rendered of ``seg``: its prompt and each variant, else its ``takes``, else ``style.takes``."""
        if seg.variants:
            return 1 + len(seg.variants)
        return seg.takes or self.style.takes


def handle_frames(board: Storyboard, seg: Segment) -> int:
    """Frames rendered at each end of ``seg`` beyond the ones the film uses (``output.handles_s`` at its rate)."""
    return round(board.output.handles_s * seg.fps)


def encoded_rate(board: Storyboard, seg: Segment) -> tuple[int, float]:
    """Frames and rate of a segment's encoded video: raised to ``output.fps`` when that is higher, same duration."""
    out = board.output.fps
    return (round(seg.frames * out / seg.fps), out) if out and out > seg.fps else (seg.frames, seg.fps)


def encoded_handles(board: Storyboard, seg: Segment, rendered: int | None = None) -> tuple[int, int]:
    """Frames of ``seg``'s head and tail handles in its encoded video's rate (``encoded_rate``); (0, 0) without handles.

    ``rendered``: the frames the generator rendered (a model with a frame-count rule fits the handles to it), else
    ``frames + 2 x handles``. The middle is the segment's ``frames``; the head is half the rest, the tail the others."""
    used, out = encoded_rate(board, seg)
    rendered = rendered or seg.frames + 2 * handle_frames(board, seg)
    total = round(rendered * out / seg.fps) if out != seg.fps else rendered
    head = (total - used) // 2
    return head, total - used - head


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "storyboard"


_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxstring, _REPR.maxother, _REPR.maxlong, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 40, 4, 4, 2


def _short(value: Any) -> str:
    """The value for an error message, cut short without building the repr of all of it (reprlib)."""
    text = _REPR.repr(value)
    return f"{text} ({len(value)} characters)" if isinstance(value, str) and len(value) > 60 else text


def _cross_reference_errors(board: Storyboard) -> list[dict[str, str]]:
    errors = []
    seen: dict[str, int] = {}
    for i, seg in enumerate(board.segments):
        if seg.id in seen:
            message = f"duplicate segment id {seg.id!r} (also segments[{seen[seg.id]}])"
            errors.append({"field": f"segments[{i}].id", "message": message})
        seen.setdefault(seg.id, i)
        for j, name in enumerate(seg.characters):
            if name not in board.characters:
                known = ", ".join(sorted(board.characters)) or "none defined"
                message = f"unknown character {name!r} (known: {known})"
                errors.append({"field": f"segments[{i}].characters[{j}]", "message": message})
        if seg.location is not None and seg.location not in board.locations:
            known = ", ".join(sorted(board.locations)) or "none defined"
            errors.append({"field": f"segments[{i}].location", "message": f"unknown location {seg.location!r} (known: {known})"})
        if seg.transition.type != "cut" and i == 0:
            message = "the first segment has nothing to transition from; use 'cut'"
            errors.append({"field": "segments[0].transition", "message": message})
        if seg.start_from is not None and i == 0:
            message = f"the first segment has no segment before it to start from (got {seg.start_from!r})"
            errors.append({"field": "segments[0].start_from", "message": message})
        elif seg.start_from is not None and max(board.takes_of(seg), board.takes_of(board.segments[i - 1])) > 1:
            message = "continues from one render of the segment before: neither may have takes or variants"
            errors.append({"field": f"segments[{i}].start_from", "message": message})
        if seg.transition.duration > seg.duration_s or (i and seg.transition.duration > board.segments[i - 1].duration_s):
            message = f"{seg.transition.duration} s is longer than a segment it joins"
            errors.append({"field": f"segments[{i}].transition.duration", "message": message})
        if seg.narration is not None and seg.audio is not None:
            errors.append({"field": f"segments[{i}].audio", "message": "give narration text or an audio file, not both"})
        speech = seg.tags.speech
        if speech is not None and (seg.narration is not None or seg.audio is not None):
            other = "narration" if seg.narration is not None else "audio"
            message = f"the prompt speaks ({speech!r} in <S>...<E>); give that or {other}, not both"
            errors.append({"field": f"segments[{i}].{other}", "message": message})
        if not seg.tags.picture:
            message = "nothing is left to picture once the <S> and <AUDCAP> tags are removed"
            errors.append({"field": f"segments[{i}].prompt", "message": message})
        if seg.variants is not None and seg.takes is not None:
            message = f"give takes or variants, not both (takes {seg.takes}, {len(seg.variants)} variants)"
            errors.append({"field": f"segments[{i}].variants", "message": message})
        if board.output.fps is not None and seg.fps > board.output.fps:
            message = f"{seg.fps} is above output.fps {board.output.fps}; interpolation only raises the rate"
            errors.append({"field": f"segments[{i}].fps", "message": message})
    if len(set(board.deliverables.crops)) != len(board.deliverables.crops):
        errors.append({"field": "deliverables.crops", "message": f"each crop once, got {board.deliverables.crops}"})
    return errors


class StoryboardInvalid(InvalidInput):
    """A storyboard that cannot be rendered; ``errors`` lists each failing field."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


@dataclass(frozen=True, kw_only=True, slots=True)
class StoryboardLimits:
    """What one submission may ask for; an operator may lower each (the gateway's REELFORGE_MAX_* settings)."""

    segments: int = MAX_SEGMENTS
    frames_per_segment: int = MAX_FRAMES
    film_seconds: float = 3600.0
    output_pixels: int = 3840 * 2160
    field_chars: int = MAX_PROMPT_CHARS


def limit_errors(board: Storyboard, limits: StoryboardLimits) -> list[dict[str, str]]:
    """Each limit the storyboard passes, naming the field, its value and the limit (and the setting that sets it)."""
    errors = []

    def over(field: str, value: float | str, limit: float, setting: str) -> None:
        errors.append({"field": field, "message": f"{value} is above the limit {limit} (REELFORGE_{setting})"})

    if len(board.segments) > limits.segments:
        over("segments", f"{len(board.segments)} segments", limits.segments, "MAX_SEGMENTS")
    for i, seg in enumerate(board.segments):
        if (rendered := seg.frames + 2 * handle_frames(board, seg)) > limits.frames_per_segment:
            value = seg.frames if rendered == seg.frames else f"{seg.frames} + 2 x {handle_frames(board, seg)} (output.handles_s)"
            over(f"segments[{i}].frames", value, limits.frames_per_segment, "MAX_FRAMES_PER_SEGMENT")
    if board.duration_s > limits.film_seconds:
        over("segments", f"{board.duration_s:.1f} s of film", limits.film_seconds, "MAX_FILM_SECONDS")
    pixels = board.output.width * board.output.height
    if pixels > limits.output_pixels:
        over("output", f"{board.output.width}x{board.output.height} = {pixels} pixels", limits.output_pixels, "MAX_OUTPUT_PIXELS")
    for field, text in _texts(board.model_dump(), ""):
        if len(text) > limits.field_chars:
            over(field, f"{len(text)} characters", limits.field_chars, "MAX_FIELD_CHARS")
    return errors


def _texts(value: Any, path: str) -> list[tuple[str, str]]:
    """(field path, text) of every string in a dumped storyboard."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _texts(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _texts(v, f"{path}[{i}]")]
    return []


def _capped(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    if len(errors) <= MAX_ERRORS:
        return errors
    return [*errors[:MAX_ERRORS], {"field": "storyboard", "message": f"{len(errors) - MAX_ERRORS} more errors not listed"}]


def parse_storyboard(data: Any, limits: StoryboardLimits | None = None) -> Storyboard:
    """Validate a decoded storyboard (a mapping, or a plain list of segments), within ``limits`` where given.

    Submissions pass the operator's limits; a storyboard read back from the work bucket was checked
    when it was submitted and passes none.
    """
    if isinstance(data, list):
        data = {"segments": data}
    if not isinstance(data, dict):
        message = f"expected a mapping or a list of segments, got {type(data).__name__}"
        raise StoryboardInvalid([{"field": "storyboard", "message": message}])
    try:
        board = Storyboard.model_validate(data)
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_context=False)
        listed = [  # only the errors listed are written out: a value's repr costs, and there may be 100,000 of them
            {"field": _field_path(err["loc"]), "message": f"{err['msg']} (got {_short(err.get('input'))})"}
            for err in found[:MAX_ERRORS]
        ]
        unlisted = [{"field": "storyboard", "message": f"{len(found) - MAX_ERRORS} more errors not listed"}]
        raise StoryboardInvalid(listed + (unlisted if len(found) > MAX_ERRORS else [])) from None
    if errors := _cross_reference_errors(board) + (limit_errors(board, limits) if limits is not None else []):
        raise StoryboardInvalid(_capped(errors))
    return board


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def decode_storyboard(text: str | bytes, max_yaml_bytes: int | None = None, deadline: float | None = None) -> Any:
    """The data of a JSON or YAML storyboard; StoryboardInvalid for text that is neither, or YAML with anchors or aliases.

    JSON is read by the standard library (fast, NaN and Infinity refused); anything else by libyaml (up to
    ``max_yaml_bytes``) in one pass that refuses the first anchor or alias with its line and stops with
    :class:`~reelforge_shared.bounded_yaml.DeadlinePassed` once ``deadline`` (``time.monotonic()``) has passed.
    """
    raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    if raw.lstrip()[:1] in {"{", "["}:
        try:
            return json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            pass  # YAML's flow style looks like JSON: read it as YAML, which names the line of any error
    if max_yaml_bytes is not None and len(raw) > max_yaml_bytes:  # YAML is read at a few MB/s at best: JSON beyond this
        message = f"{len(raw)} characters of YAML is above the limit {max_yaml_bytes} (REELFORGE_MAX_YAML_BYTES); send JSON"
        raise StoryboardInvalid([{"field": "storyboard", "message": message}])
    try:
        return load_bounded(raw, deadline)
    except AnchorRefused as exc:
        raise StoryboardInvalid([{"field": "storyboard", "message": str(exc), "line": str(exc.line)}]) from None
    except yaml.YAMLError as exc:
        raise StoryboardInvalid([{"field": "storyboard", "message": f"not valid YAML or JSON: {_REPR.repr(str(exc))}"}]) from None
    except RecursionError:
        raise StoryboardInvalid([{"field": "storyboard", "message": "nested too deep"}]) from None


def load_storyboard(text: str | bytes, limits: StoryboardLimits | None = None) -> Storyboard:
    """Parse YAML or JSON text (JSON is YAML) into a validated storyboard."""
    return parse_storyboard(decode_storyboard(text), limits)
