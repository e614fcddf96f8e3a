"""The bus contract: every event on NATS, its subject and its version, in one module.

Subjects are ``{prefix}.{Event.subject}`` (prefix from ``REELFORGE_SUBJECT_PREFIX``). Facts are
named in the past tense, commands imperatively. Each event has a deterministic
:meth:`Event.dedup_id` that becomes its ``Nats-Msg-Id``, so a repeated publish (a retry, a
redelivered trigger) is stored once. Additive changes add optional fields; a breaking change adds a
new model with ``schema_version = 2`` on a new subject. ``reelforge schema`` prints the JSON Schema.

Read top-down: the fields that recur (each described once, with an example, for the JSON Schema and the
AsyncAPI document), the envelope every event carries, the parts events are made of, then the events in
the order a job meets them, then the side paths (re-render, cancel, failures, webhooks, dead letters).
What an event inherits from the one it follows lives in :mod:`reelforge_shared.envelope`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from reelforge_shared.envelope import inherited
from reelforge_shared.errors import PermanentError

# --- Fields that recur ---------------------------------------------------------------------------------

JobId = Annotated[str, Field(description="job id returned by the gateway", examples=["j-5f1c2e7a9b"])]
EventId = Annotated[
    str,
    Field(
        description="unique id of this publication (a republished fact gets a new one)",
        examples=["5b0c1f7e2d8a4c6b9e3f1a2d4c6b8e0f"],
    ),
]
OccurredAt = Annotated[datetime, Field(description="when the event was created (UTC)", examples=["2026-11-28T01:00:00Z"])]
Resume = Annotated[int, Field(ge=0, description="times the job was resumed after it failed (0: never)", examples=[0])]
SegmentIndex = Annotated[
    int, Field(ge=1, description="1-based position of the segment in the storyboard; keys use {index:03d}", examples=[1])
]
SegmentId = Annotated[str, Field(description="the storyboard's id of the segment", examples=["open"])]
Attempt = Annotated[
    int, Field(ge=1, description="render attempt of the segment: 1, then one more per QA re-render", examples=[1])
]
FilmVersion = Annotated[
    int,
    Field(ge=1, description="film version: 1, then one more per segment re-render; earlier versions stay", examples=[1]),
]
SegmentCount = Annotated[int, Field(description="number of segments in the job", examples=[33])]
Take = Annotated[
    int,
    Field(
        ge=0,
        lt=8,
        description="which take of the segment this is (0: the segment's own seed and prompt; reelforge_shared.takes)",
        examples=[0],
    ),
]
Takes = Annotated[
    int, Field(ge=1, le=8, description="takes of the segment rendered; the best by QA goes into the film", examples=[1])
]
Seed = Annotated[int, Field(ge=0, lt=2**32)]
DeliveredAttempts = Annotated[
    list[Annotated[int, Field(ge=1)]],
    Field(
        description="the delivered attempt of each segment in storyboard order, as the job store recorded it "
        "(the film is made of these); empty: every segment's first attempt",
        examples=[[1, 2, 1]],
    ),
]

ChosenTakes = Annotated[
    list[Annotated[int, Field(ge=0)]],
    Field(
        description="the take in the film of each segment in storyboard order, as the job store recorded it "
        "(reelforge_shared.takes); empty: every segment's take 0",
        examples=[[0, 2, 0]],
    ),
]

SourceFrame = Annotated[
    int,
    Field(
        ge=0,
        description="a frame of the render's whole media at the segment's encoded rate, handles included "
        "(0: its first; with output.handles_s the part the storyboard's film uses starts after the head handle)",
        examples=[3],
    ),
]
TransitionKind = Annotated[
    Literal["cut", "dissolve", "fade"],
    Field(description="the transition into this entry: cut, dissolve, or fade (through black)", examples=["cut"]),
]


class CutEntry(BaseModel):
    """One clip of a film version's cut: which render of which segment, and the frames of its media the film uses."""

    model_config = ConfigDict(frozen=True)
    index: SegmentIndex
    attempt: Attempt = 1
    take: Take = 0
    source_in: SourceFrame
    source_out: Annotated[int, Field(ge=1, description="the frame after the last one used (exclusive)", examples=[9])]
    transition: TransitionKind = "cut"
    transition_frames: Annotated[
        int, Field(ge=0, description="film frames of the transition into this entry (0: a cut)", examples=[0])
    ] = 0


FilmCut = Annotated[
    list[CutEntry],
    Field(
        description="the film's clips in film order, as an editor's re-imported timeline cut it (trims, order, removals, "
        "earlier attempts); empty: the storyboard's order, each segment's delivered attempt and take whole",
        examples=[[{"index": 2, "attempt": 1, "take": 0, "source_in": 3, "source_out": 9, "transition": "cut"}]],
    ),
]

FrameCount = Annotated[int, Field(description="frames in the output", examples=[24])]
Fps = Annotated[float, Field(description="frames per second", examples=[3.0])]
Width = Annotated[int, Field(description="width in pixels", examples=[1920])]
Height = Annotated[int, Field(description="height in pixels", examples=[1080])]
DurationS = Annotated[float, Field(description="duration in seconds", examples=[8.0])]

VideoKey = Annotated[
    str, Field(description="work-bucket key of the segment's MP4", examples=["jobs/j-5f1c2e7a9b/segments/001/segment.mp4"])
]
FilmKey = Annotated[str, Field(description="key of the film", examples=["jobs/j-5f1c2e7a9b/final.mp4"])]
ReportKey = Annotated[str, Field(description="key of the job report (JSON)", examples=["jobs/j-5f1c2e7a9b/report.json"])]
ReportHtmlKey = Annotated[
    str | None, Field(description="key of the job report (HTML)", examples=["jobs/j-5f1c2e7a9b/report.html"])
]
DeliveryBucket = Annotated[str, Field(description="S3 bucket the job was delivered to", examples=["f1-video-clips"])]
StorageProvider = Literal["s3", "gitlab"]

Passed = Annotated[bool, Field(description="whether it passed", examples=[True])]
Stage = Annotated[str, Field(description="service that gave up", examples=["encoder"])]
Error = Annotated[
    str, Field(description="what went wrong", examples=["TransientError: S3 put 'jobs/j-5f1c2e7a9b/final.mp4' failed"])
]

WebhookId = Annotated[str, Field(examples=["msg_2f1c0e7a9b3d"])]
WebhookUrl = Annotated[str, Field(description="target URL", examples=["https://hooks.example.com/reelforge"])]
EventType = Annotated[str, Field(examples=["job.completed"])]


# --- The envelope ----------------------------------------------------------------------------------------


class Event(BaseModel):
    """Envelope fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # ignore: newer producers may add fields

    subject: ClassVar[str]
    schema_version: Literal[1] = Field(
        1, description="version of this event's schema; a breaking change is a new model on a new subject", examples=[1]
    )
    event_id: EventId = Field(default_factory=lambda: uuid4().hex)
    occurred_at: OccurredAt = Field(default_factory=lambda: datetime.now(UTC))
    job_id: JobId
    resume: Resume = 0

    def dedup_id(self) -> str:
        """Same logical event, same id: JetStream drops the repeat inside its duplicate window."""
        return f"{self.subject}:{self.job_id}{self._run()}"

    def _run(self) -> str:
        """The resume's part of the de-duplication id: a resumed job's events are new events, not repeats."""
        return f":r{self.resume}" if self.resume else ""

    @classmethod
    def follow(cls, source: Event, **fields: Any) -> Self:
        """The event that ``source`` leads to, its envelope taken from ``source``, never copied by hand.

        ``job_id`` and ``resume`` always come along; between two segment events ``index``, ``segment_id``
        and ``attempt`` do too. Passing one of them is refused (a handler cannot drop or mistype the
        attempt, which is part of the de-duplication id); a re-render names its new attempt
        with :meth:`SegmentEvent.retry` instead.
        """
        envelope = inherited(cls, source)
        if clash := sorted(envelope.keys() & fields.keys()):
            raise TypeError(f"{cls.__name__}.follow: {', '.join(clash)} come from the source event; do not pass them")
        return cls(**envelope, **fields)

    def failure(self, stage: str, error: str) -> Event:
        """The event that records this event's failure for good."""
        return JobFailed.follow(self, stage=stage, error=error)


_REUSED_EXAMPLE = {"job_id": "j-5f1c2e7a9b", "index": 3, "attempt": 1, "shot_key": "9f2c1e0b7a6d5c4b3a29181706f5e4d3"}


class ReusedFrom(BaseModel):
    """The render a reused shot's frames come from: its job, segment and attempt (reelforge_shared.shots)."""

    model_config = ConfigDict(frozen=True)
    job_id: str = Field(description="job that rendered the frames", examples=["j-5f1c2e7a9b"])
    index: int = Field(ge=1, description="its segment", examples=[3])
    attempt: int = Field(ge=1, description="its attempt", examples=[1])
    take: int = Field(0, ge=0, description="its take", examples=[0])
    shot_key: str = Field(
        description="the shot key both share", examples=["9f2c1e0b7a6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a3928170615f4e3"]
    )


ShotKey = Annotated[
    str | None,
    Field(
        description="SHA-256 of the segment's canonical render spec (reelforge_shared.shots): the same key, the same pixels",
        examples=["9f2c1e0b7a6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a3928170615f4e3"],
    ),
]


class SegmentEvent(Event):
    """An event about one render attempt of one segment (of one of its takes, when it has several)."""

    index: SegmentIndex
    segment_id: SegmentId
    attempt: Attempt = 1
    take: Take = 0
    takes: Takes = 1

    def dedup_id(self) -> str:
        take = f":t{self.take}" if self.take else ""
        return f"{self.subject}:{self.job_id}:{self.index:03d}:{self.attempt}{take}{self._run()}"

    @classmethod
    def retry(cls, source: SegmentEvent, attempt: int, **fields: Any) -> Self:
        """Like :meth:`follow`, for a re-render: the one place an attempt changes, and only upwards."""
        if attempt <= source.attempt:
            raise ValueError(f"a retry of attempt {source.attempt} needs a later attempt, got attempt={attempt}")
        envelope = inherited(cls, source) | {"attempt": attempt}
        if clash := sorted(envelope.keys() & fields.keys()):
            raise TypeError(f"{cls.__name__}.retry: {', '.join(clash)} come from the source event; do not pass them")
        return cls(**envelope, **fields)

    def failure(self, stage: str, error: str) -> Event:
        return SegmentFailed.follow(self, stage=stage, error=error)


class FilmEvent(Event):
    """An event about one version of a job's film; the version travels from event to event (:meth:`Event.follow`)."""

    version: FilmVersion = 1
    attempts: DeliveredAttempts = Field(default_factory=list)
    chosen_takes: ChosenTakes = Field(default_factory=list)
    cut: FilmCut = Field(default_factory=list)

    def delivered_attempt(self, index: int) -> int:
        """Segment ``index``'s delivered attempt (1-based index; the job store's record, carried by the film events)."""
        if not self.attempts:
            return 1
        if not 1 <= index <= len(self.attempts):
            named = len(self.attempts)
            raise PermanentError(f"{self.subject} of job {self.job_id} names {named} attempts, not segment {index}'s")
        return self.attempts[index - 1]

    def delivered_take(self, index: int) -> int:
        """Segment ``index``'s take in the film (1-based index; 0 unless the job store recorded another)."""
        if not self.chosen_takes:
            return 0
        if not 1 <= index <= len(self.chosen_takes):
            named = len(self.chosen_takes)
            raise PermanentError(f"{self.subject} of job {self.job_id} names {named} takes, not segment {index}'s")
        return self.chosen_takes[index - 1]

    def delivered_slots(self, count: int) -> list[tuple[int, int]]:
        """Each segment's (attempt, take) in the film, in film order, for a storyboard of ``count`` segments."""
        return [(self.delivered_attempt(n), self.delivered_take(n)) for n in range(1, count + 1)]

    def dedup_id(self) -> str:
        base = f"{self.subject}:{self.job_id}"
        return (base if self.version == 1 else f"{base}:v{self.version}") + self._run()


# --- Parts of events -----------------------------------------------------------------------------------


class ModelInfo(BaseModel):
    """The model that rendered a segment's frames."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Hugging Face id or local path of the model", examples=["stabilityai/stable-diffusion-2-1"])
    pipeline: str = Field(description="diffusers pipeline class read from the model", examples=["StableDiffusionPipeline"])
    random_weights: bool = Field(description="true for Reelforge's tiny random-weight test models", examples=[False])


_MODEL_EXAMPLE = {"name": "stabilityai/stable-diffusion-2-1", "pipeline": "StableDiffusionPipeline", "random_weights": False}
RenderedBy = Annotated[ModelInfo, Field(description="the model that rendered the frames", examples=[_MODEL_EXAMPLE])]


class CastSheet(BaseModel):
    """A cast sheet entry: a character's or location's reference image, rendered once by the generator (issue 18 point 6).

    Made for each character and location of a segment that has no ``reference_image`` (``style.cast_sheet``, on by
    default); its own shot key (:func:`reelforge_shared.shots.sheet_key`) is part of the segment's.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["character", "location"] = Field(description="what the sheet shows", examples=["character"])
    name: str = Field(description="the character or location as the storyboard names it", examples=["hero"])
    prompt: str = Field(description="what the sheet shows: the description, the style", examples=["an old gardener"])
    seed: Seed = Field(description="the character's or location's seed", examples=[1000])


class StartFrame(BaseModel):
    """The frame a segment continues from (``start_from: previous``): the last frame of the shot before it."""

    model_config = ConfigDict(frozen=True)

    frame_key: str = Field(
        description="work-bucket key of the previous segment's last frame",
        examples=["jobs/j-5f1c2e7a9b/segments/002/frames/0023.png"],
    )
    shot_key: str | None = Field(
        description="the previous shot's key: part of this shot's key, so this shot renders again when that one changes",
        examples=["9f2c1e0b7a6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a3928170615f4e3"],
    )


class RenderSpec(BaseModel):
    """Everything the generator needs for one segment, resolved from the storyboard."""

    model_config = ConfigDict(frozen=True)

    prompt: str = Field(
        description="full prompt (action, cast, location, style and light folded in)",
        examples=["an apple tree in spring, documentary still"],
    )
    negative_prompt: str = Field("", description="what to avoid", examples=["blurry, low quality"])
    seed: Seed = Field(description="segment seed (cast/location seed family + position)", examples=[1042])
    character_seeds: list[int] = Field(default_factory=list, description="seeds of the characters in the shot", examples=[[1000]])
    location_seed: int | None = Field(None, description="seed of the location", examples=[5000])
    reference_images: list[str] = Field(
        default_factory=list,
        description="work-bucket keys of reference images (consistency)",
        examples=[["jobs/j-5f1c2e7a9b/refs/hero.png"]],
    )
    frames: int = Field(ge=1, description="frames to render (handles included)", examples=[24])
    handles: int = Field(
        0,
        ge=0,
        description="frames of each handle included in frames (output.handles_s at fps); a model whose clips are "
        "step*k+1 frames renders the total nearest to frames that keeps its rule, the middle unchanged",
        examples=[0],
    )
    fps: Fps = Field(gt=0)
    width: Width = Field(description="delivery width; the generator renders at its own size")
    height: Height
    steps: int | None = Field(
        None, ge=1, le=200, description="denoising steps of this segment; unset: the generator's", examples=[25]
    )
    guidance: float | None = Field(
        None, ge=0, le=50, description="guidance scale of this segment; unset: the generator's", examples=[7.5]
    )
    speech: str | None = Field(
        None,
        description="the prompt's <S>...<E> text: spoken in the segment (narration; a sound model may voice it)",
        examples=["Prost, auf den Baum!"],
    )
    audio_caption: str | None = Field(
        None,
        description="the prompt's <AUDCAP>...<ENDAUDCAP> text: the scene's sound, for models that generate sound; not in prompt",
        examples=["wind in the leaves, birds"],
    )
    cast_sheet: list[CastSheet] = Field(
        default_factory=list,
        description="the cast sheet images this segment is conditioned on (models that take a reference), rendered once",
        examples=[[{"kind": "character", "name": "hero", "prompt": "a young man in a red jacket", "seed": 1000}]],
    )
    start_frame: StartFrame | None = Field(
        None,
        description="set: the segment continues from this frame (image-to-video: its start image; else a reference)",
        examples=[
            {
                "frame_key": "jobs/j-5f1c2e7a9b/segments/002/frames/0023.png",
                "shot_key": "9f2c1e0b7a6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a3928170615f4e3",
            }
        ],
    )


_SPEC_EXAMPLE = {
    "prompt": "documentary still, an apple tree in spring",
    "negative_prompt": "blurry",
    "seed": 1042,
    "frames": 24,
    "fps": 3.0,
    "width": 1920,
    "height": 1080,
}


class QaGate(BaseModel):
    """One QA gate's verdict."""

    model_config = ConfigDict(frozen=True)

    score: float = Field(ge=0, le=1, description="0 (bad) to 1 (good)", examples=[0.93])
    threshold: float = Field(description="the score needed to pass", examples=[0.5])
    passed: Passed
    detail: str = Field("", description="why, in words", examples=["laplacian variance 212 over 150"])


class ReferenceScore(BaseModel):
    """How close a segment is to one of the job's references: a character's ``reference_image`` or cast sheet, or a
    location's cast sheet (issue 18 points 3 and 6; ``reelforge_qa.references``)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["character", "location"] = Field(description="what the reference shows", examples=["character"])
    name: str = Field(description="the character or location as the storyboard names it", examples=["hero"])
    source: Literal["cast_sheet", "reference_image"] = Field(
        description="the cast sheet drawn by the generator, or the storyboard's reference_image", examples=["cast_sheet"]
    )
    image: str = Field(description="work-bucket key of the reference image", examples=["jobs/j-5f1c2e7a9b/cast/9f2c1e0b.png"])
    score: float | None = Field(
        ge=0, le=1, description="0 (another look) to 1 (the same); None: the reference shows nothing to compare", examples=[0.93]
    )
    components: dict[str, float] = Field(
        default_factory=dict, description="each descriptor's score; the score combines them", examples=[{"colour": 0.93}]
    )
    detail: str = Field("", description="how the score was made, in words", examples=["lowest: colour"])


_QA_EXAMPLE: dict[str, Any] = {
    "passed": True,
    "measured": {"codec": "h264", "duration_s": 2.0},
    "gates": {"technical": {"score": 1.0, "threshold": 1.0, "passed": True, "detail": ""}},
}


class QaReport(BaseModel):
    """QA's verdict on a segment: every gate, and what was read back from the file."""

    model_config = ConfigDict(frozen=True)

    passed: Passed
    gates: dict[str, QaGate] = Field(description="gate name -> verdict", examples=[_QA_EXAMPLE["gates"]])
    measured: dict[str, float | str | int] = Field(
        default_factory=dict, description="what was read back from the file", examples=[_QA_EXAMPLE["measured"]]
    )
    references: list[ReferenceScore] = Field(
        default_factory=list,
        description="continuity against the job's cast and location references (one per character and the location the "
        "segment shows that has one); the take policy reads their mean (reelforge_shared.takes)",
        examples=[
            [{"kind": "character", "name": "hero", "source": "cast_sheet", "image": "jobs/j/cast/9f2c.png", "score": 0.93}]
        ],
    )

    @property
    def continuity(self) -> float | None:
        """The mean score against the references (None: none was scored)."""
        scores = [r.score for r in self.references if r.score is not None]
        return round(sum(scores) / len(scores), 4) if scores else None


SegmentQa = Annotated[QaReport, Field(description="QA's verdict on the segment", examples=[_QA_EXAMPLE])]


# --- The job's path, in order ----------------------------------------------------------------------------


class JobSubmitted(Event):
    """Fact: the gateway accepted a storyboard and stored it; the job's segments are requested next."""

    subject: ClassVar[str] = "job.submitted"
    title: str = Field(description="the storyboard's title", examples=["Der Apfelbaum"])
    segment_count: SegmentCount
    duration_s: DurationS
    storyboard_key: str = Field(
        description="work-bucket key of the stored storyboard", examples=["jobs/j-5f1c2e7a9b/storyboard.json"]
    )


class SegmentRequested(SegmentEvent):
    """Command: render this segment's frames."""

    subject: ClassVar[str] = "segment.requested"
    spec: RenderSpec = Field(description="what to render, resolved from the storyboard", examples=[_SPEC_EXAMPLE])
    model: str | None = Field(
        None,
        description="model id or path; unset: the generator's REELFORGE_MODEL",
        examples=["stabilityai/stable-diffusion-2-1"],
    )
    shot_key: ShotKey = None
    reused_from: ReusedFrom | None = Field(
        None,
        description="set: the frames are reused (segment.generated is already published), the generator does nothing",
        examples=[_REUSED_EXAMPLE],
    )


class SegmentGenerated(SegmentEvent):
    """Fact: the segment's frames (and the model's sound, if it made any) are stored."""

    subject: ClassVar[str] = "segment.generated"
    frames_prefix: str = Field(
        description="work-bucket prefix of the PNG frames", examples=["jobs/j-5f1c2e7a9b/segments/001/frames/"]
    )
    frame_count: FrameCount
    fps: Fps
    width: Width
    height: Height
    model: RenderedBy
    degraded: str | None = Field(
        None, description="what was given up to finish (smaller batch, lower size)", examples=["batch 8 -> 4 after out-of-memory"]
    )
    prompt: str | None = Field(
        None,
        description="the prompt as the model was given it (sound tags removed for a model without sound)",
        examples=["a young man plants an apple sapling, in a farmland field, documentary still, daylight 5500K"],
    )
    prompt_tokens: int | None = Field(
        None, ge=0, description="tokens of the prompt, counted with the model's own tokenizer", examples=[96]
    )
    prompt_tokens_dropped: int | None = Field(
        None, ge=0, description="prompt tokens the model did not see (0: the whole prompt was encoded)", examples=[0]
    )
    render_s: float | None = Field(
        None, ge=0, description="seconds the generator spent rendering the segment's missing frames", examples=[10.3]
    )
    s_per_frame: float | None = Field(None, ge=0, description="render seconds per frame rendered", examples=[0.43])
    peak_vram_bytes: int | None = Field(
        None, ge=0, description="peak GPU memory PyTorch allocated while rendering; unset on a CPU", examples=[35970351104]
    )
    audio_key: str | None = Field(
        None,
        description="work-bucket key of the sound the model made with the frames (WAV, the segment's length); unset: no sound",
        examples=["jobs/j-5f1c2e7a9b/segments/001/audio.wav"],
    )
    shot_key: ShotKey = None
    reused_from: ReusedFrom | None = Field(
        None, description="the earlier render whose frames these are; unset: rendered", examples=[_REUSED_EXAMPLE]
    )


class SegmentEncoded(SegmentEvent):
    """Fact: the segment's MP4 is stored."""

    subject: ClassVar[str] = "segment.encoded"
    video_key: VideoKey
    frame_count: FrameCount
    fps: Fps
    width: Width
    height: Height
    duration_s: DurationS
    model: RenderedBy
    has_audio: bool = Field(
        False, description="the segment MP4 carries sound (the model's, narration or an audio file)", examples=[False]
    )


class SegmentChecked(SegmentEvent):
    """Fact: QA checked the segment; its report is stored."""

    subject: ClassVar[str] = "segment.checked"
    video_key: VideoKey
    duration_s: DurationS
    qa: SegmentQa
    report_key: ReportKey
    model: RenderedBy


class SegmentDelivered(SegmentEvent):
    """Fact for downstream users: a segment is in the delivery bucket."""

    subject: ClassVar[str] = "segment.delivered"
    video_key: VideoKey
    delivery_bucket: DeliveryBucket
    delivery_key: str = Field(description="key in the delivery bucket", examples=["j-5f1c2e7a9b/segments/001.mp4"])
    url: str | None = Field(
        None,
        description="GitLab's URL of the upload; unset for S3 (since 2026-12 no presigned URL travels on the bus: "
        "delivery_bucket and delivery_key name it, and the gateway signs a short-lived URL for its owner, GET /v1/assets)",
        examples=["https://gitlab.com/-/project/42/uploads/0f1e/001.mp4"],
    )
    storage_provider: StorageProvider = Field(
        "s3", description="where the video was delivered (GitLab over 1 MiB)", examples=["s3"]
    )
    parts: int = Field(
        1, ge=1, description="more than 1: the video was split and url is the manifest JSON of its parts", examples=[1]
    )
    duration_s: DurationS
    qa: SegmentQa
    model: RenderedBy
    selected_for: int | None = Field(
        None,
        ge=1,
        description="the film version this take was delivered for when its owner selected it (segment.take_selected); "
        "unset for the take the policy chose",
        examples=[2],
    )

    def dedup_id(self) -> str:  # a selected take is delivered once per film version it goes into
        return super().dedup_id() + (f":v{self.selected_for}" if self.selected_for else "")


class SegmentTakeSelected(SegmentEvent):
    """Command: deliver take ``take`` of the segment's attempt in place of the one delivered (``POST
    /v1/jobs/{id}/segments/{n}/takes/{k}/select``); its ``segment.delivered`` makes the film's next version."""

    subject: ClassVar[str] = "segment.take_selected"
    version: FilmVersion
    by: str | None = Field(None, description="who selected it (the API token's name)", examples=["alice"])

    def dedup_id(self) -> str:  # the same take may be selected again for a later film version
        return f"{super().dedup_id()}:v{self.version}"


class FilmRequested(FilmEvent):
    """Command: every segment is delivered, compile the film (published once per film version, by the job ledger)."""

    subject: ClassVar[str] = "film.requested"
    segment_count: SegmentCount


class FilmEncoded(FilmEvent):
    """Fact: the film is compiled and stored, with its deliverables."""

    subject: ClassVar[str] = "film.encoded"
    film_key: FilmKey
    duration_s: DurationS
    frame_count: FrameCount
    fps: Fps
    width: Width
    height: Height


class FilmDeliverablesStored(FilmEvent):
    """Fact: the film's deliverables (its crops, thumbnail) are stored beside it, after ``film.encoded``: the encoder
    stores the film first (QA checks it meanwhile) and its deliverables off that path."""

    subject: ClassVar[str] = "film.deliverables_stored"
    film_key: FilmKey
    deliverables: dict[str, str] = Field(
        default_factory=dict,
        description="the film's deliverables (crops, thumbnail): name -> work-bucket key",
        examples=[{"9x16": "jobs/j-5f1c2e7a9b/final_9x16.mp4"}],
    )


class FilmChecked(FilmEvent):
    """QA's verdict on the whole film (continuity, transitions), with the job's reports written to S3."""

    subject: ClassVar[str] = "film.checked"
    film_key: FilmKey
    duration_s: DurationS
    frame_count: FrameCount
    fps: Fps
    width: Width
    height: Height
    passed: Passed
    deliverables: dict[str, str] = Field(
        default_factory=dict,
        description="the film's deliverables (crops, thumbnail): name -> work-bucket key",
        examples=[{"9x16": "jobs/j-5f1c2e7a9b/final_9x16.mp4"}],
    )
    report_key: ReportKey = Field(description="job report (JSON) in the work bucket")
    report_html_key: ReportHtmlKey = Field(None, description="job report (HTML) in the work bucket")


class JobCompleted(FilmEvent):
    """Fact for downstream users: the film and its report are delivered."""

    subject: ClassVar[str] = "job.completed"
    delivery_bucket: DeliveryBucket
    film_key: FilmKey
    film_url: str | None = Field(
        None,
        description="GitLab's URL of the film; unset for S3 (since 2026-12 no presigned URL travels on the bus: "
        "film_key names it, and GET /v1/jobs/{id}/film redirects its owner to a short-lived URL)",
        examples=["https://gitlab.com/-/project/42/uploads/0f1e/final.mp4"],
    )
    film_storage_provider: StorageProvider = Field("s3", description="where the film was delivered", examples=["s3"])
    film_parts: int = Field(
        1, ge=1, description="more than 1: the film was split and film_url is the manifest of its parts", examples=[1]
    )
    report_key: ReportKey
    report_url: str | None = Field(
        None,
        description="GitLab's URL of the job report; unset for S3, where reports always go (report_key names it; "
        "GET /v1/assets?job= signs a short-lived URL for the job's owner)",
        examples=[None],
    )
    duration_s: DurationS
    segment_count: SegmentCount
    qa_failed_segments: list[int] = Field(
        default_factory=list, description="indexes of segments delivered with a failed QA gate", examples=[[4]]
    )
    report_html_key: ReportHtmlKey = None
    deliverables: dict[str, str] = Field(
        default_factory=dict,
        description="the film's deliverables (crops, thumbnail): name -> delivery-bucket key",
        examples=[{"9x16": "j-5f1c2e7a9b/final_9x16.mp4"}],
    )
    film_qa_passed: bool | None = Field(None, description="QA's verdict on the whole film (continuity, joins)", examples=[True])


# --- Side paths: re-render, cancel, failures, webhooks ---------------------------------------------------


class SegmentRerenderRequested(Event):
    """Command: render one segment of the job again (new seed and/or prompt); the film gets a new version.

    The gateway handles it with :func:`reelforge_shared.jobs.rerender_segment`; a service that wants
    a segment again (continuity QA) returns this event instead of calling the function.
    """

    subject: ClassVar[str] = "segment.rerender_requested"
    index: SegmentIndex
    seed: Seed | None = Field(None, description="new seed (unset: the segment's seed)", examples=[1042])
    prompt: str | None = Field(
        None,
        min_length=1,
        description="new prompt (unset: the storyboard's)",
        examples=["an apple tree in spring, documentary still"],
    )
    reason: str = Field("", description="why, for the ledger's change list", examples=["continuity: hero's shirt changed colour"])
    reference_images: list[str] = Field(
        default_factory=list,
        description="work-bucket keys of images that steer the new render (IP-Adapter, or image-to-video's conditioning "
        "image), after the cast's own; continuity QA gives a frame of the best-matching segment",
        examples=[["jobs/j-5f1c2e7a9b/segments/005/attempt-2/reference.png"]],
    )

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.job_id}:{self.index:03d}:{self.event_id}"


class JobCancelled(Event):
    """Fact: the job was cancelled; no later stage starts, and what was stored stays."""

    subject: ClassVar[str] = "job.cancelled"
    by: str | None = Field(None, description="name of the API token that cancelled it", examples=["ci"])


class SegmentFailed(SegmentEvent):
    """Fact: a segment could not be made; the job fails with it."""

    subject: ClassVar[str] = "segment.failed"
    stage: Stage
    error: Error

    def failure(self, stage: str, error: str) -> Event:  # a failure of a failure is not re-announced
        return self


class JobFailed(Event):
    """Fact: the job failed for good (its work so far stays stored; resubmitting resumes it)."""

    subject: ClassVar[str] = "job.failed"
    stage: Stage
    error: Error

    def failure(self, stage: str, error: str) -> Event:
        return self


class WebhookRequested(Event):
    """Command: POST one event to one webhook target, signed (Standard Webhooks); retried for a day."""

    subject: ClassVar[str] = "webhook.requested"
    webhook_id: WebhookId = Field(description="Standard Webhooks webhook-id: the same on every retry")
    url: WebhookUrl
    type: EventType = Field(description="subject of the event delivered")
    data: dict[str, Any] = Field(
        description="the event delivered, as JSON (the body's data field)",
        examples=[{"job_id": "j-5f1c2e7a9b", "error": "disk full"}],
    )

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.webhook_id}"

    def failure(self, stage: str, error: str) -> Event:
        return WebhookFailed.follow(self, webhook_id=self.webhook_id, url=self.url, type=self.type, error=error)


class WebhookFailed(Event):
    """Fact: a webhook target did not take the event: refused (410 Gone, an internal target) or every retry failed."""

    subject: ClassVar[str] = "webhook.failed"
    webhook_id: WebhookId = Field(description="the webhook-id every attempt carried")
    url: WebhookUrl
    type: EventType = Field(description="subject of the event that was not delivered")
    error: Error = Field(description="the last attempt's error")

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.webhook_id}"

    def failure(self, stage: str, error: str) -> Event:
        return self


# --- Derived renditions of a film version (the editing utilities on the API) ------------------------------

MIN_SPEED, MAX_SPEED = 0.25, 4.0
MAX_LOOPS = 100
MAX_STILLS_FPS = 120.0
RenditionId = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{16}$",
        description="the rendition's id: a hash of what it is, so the same request is the same rendition",
        examples=["3f9a0c1e7b2d4a68"],
    ),
]


class SpeedRendition(BaseModel):
    """The film played faster or slower, its sound at the same pitch."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["speed"] = Field(description="what the rendition is", examples=["speed"])
    factor: float = Field(ge=MIN_SPEED, le=MAX_SPEED, description="2: twice as fast, 0.5: half as fast", examples=[2.0])


class AudioRendition(BaseModel):
    """The film's sound alone."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["audio"] = Field(description="what the rendition is", examples=["audio"])
    format: Literal["mp3", "aac", "wav"] = Field("mp3", description="mp3, aac (in .m4a) or wav", examples=["mp3"])


class FramesRendition(BaseModel):
    """Stills of the film at a rate, as a zip of NNNN.jpg or NNNN.png."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["frames"] = Field(description="what the rendition is", examples=["frames"])
    fps: float = Field(1.0, gt=0, le=MAX_STILLS_FPS, description="stills per second of film", examples=[1.0])
    format: Literal["jpeg", "png"] = Field("jpeg", description="jpeg or png", examples=["jpeg"])


class LoopRendition(BaseModel):
    """The film several times in a row (stream copy)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["loop"] = Field(description="what the rendition is", examples=["loop"])
    times: int = Field(ge=1, le=MAX_LOOPS, description="how many times in a row", examples=[3])


class TrimRendition(BaseModel):
    """The part of the film from ``start_s`` to ``end_s``, to the frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["trim"] = Field(description="what the rendition is", examples=["trim"])
    start_s: float = Field(ge=0, description="where it starts, in seconds of film", examples=[1.0])
    end_s: float = Field(gt=0, description="where it ends (after start_s, within the film)", examples=[4.0])


class SubtitlesRendition(BaseModel):
    """Subtitles from the storyboard's narration and ``<S>...<E>`` speech: a sidecar file or the film with them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["subtitles"] = Field(description="what the rendition is", examples=["subtitles"])
    format: Literal["srt", "vtt", "soft", "burn"] = Field(
        "vtt", description="srt or vtt: the sidecar file; soft: the film with a subtitle track; burn: burnt in", examples=["vtt"]
    )


RenditionSpec = Annotated[
    SpeedRendition | AudioRendition | FramesRendition | LoopRendition | TrimRendition | SubtitlesRendition,
    Field(discriminator="kind"),
]


RenditionRequest = Annotated[
    int,
    Field(
        ge=0,
        description="the job store's number for this request of the rendition: asked again after it was deleted, a new "
        "request (made again), not a repeat the bus drops; 0 before the job store numbered them",
        examples=[1],
    ),
]


def _asked(request: int) -> str:
    """The request's part of a rendition event's de-duplication id."""
    return f":q{request}" if request else ""


def rendition_id(spec: BaseModel) -> str:
    """A rendition's id: the same kind and parameters, the same id (and the same stored file)."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


class RenditionRequested(FilmEvent):
    """Command: derive a rendition of a film version (speed, audio, stills, loop, trim, subtitles); asked through the API."""

    subject: ClassVar[str] = "rendition.requested"
    rendition_id: RenditionId
    rendition: RenditionSpec = Field(
        description="what to derive, with its parameters", examples=[{"kind": "speed", "factor": 2.0}]
    )
    request: RenditionRequest = 0

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.job_id}:v{self.version}:{self.rendition_id}{_asked(self.request)}{self._run()}"

    def failure(self, stage: str, error: str) -> Event:
        return RenditionFailed.follow(self, rendition_id=self.rendition_id, request=self.request, error=error)


class RenditionEncoded(FilmEvent):
    """Fact: a derived rendition of a film version is stored in the work bucket."""

    subject: ClassVar[str] = "rendition.encoded"
    rendition_id: RenditionId
    key: str = Field(description="its key in the work bucket", examples=["jobs/j-5f1c2e7a9b/derived/3f9a0c1e7b2d4a68.mp4"])
    size_bytes: int = Field(ge=0, description="its size", examples=[1048576])

    request: RenditionRequest = 0

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.job_id}:v{self.version}:{self.rendition_id}{_asked(self.request)}{self._run()}"


class RenditionFailed(FilmEvent):
    """Fact: a derived rendition could not be made (the film job itself is not affected)."""

    subject: ClassVar[str] = "rendition.failed"
    rendition_id: RenditionId
    error: Error

    request: RenditionRequest = 0

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.job_id}:v{self.version}:{self.rendition_id}{_asked(self.request)}{self._run()}"

    def failure(self, stage: str, error: str) -> Event:
        return self


class DeadLetter(BaseModel):
    """What a dead-letter subject (``{prefix}.dead.{service}``) carries; not an Event: it may not parse."""

    service: str = Field(description="service that gave up", examples=["encoder"])
    subject: str = Field(description="subject the message came on", examples=["reelforge.segment.encoded"])
    stream_sequence: int | None = Field(
        description="the message's sequence in the stream: read it whole from there (STREAM.MSG.GET)", examples=[4711]
    )
    deliveries: int = Field(description="deliveries before it was dead-lettered", examples=[4])
    error: str = Field(description="why it was given up (at most 2,000 characters)", examples=["InvalidInput: ..."])
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="the message's headers (at most 32, each value cut at 256 characters)",
        examples=[{"Nats-Msg-Id": "segment.requested:j-5f1c2e7a9b:001:1"}],
    )
    size: int = Field(description="bytes of the original body", examples=[412])
    preview: str = Field(
        description="base64 of the body's first 512 bytes: a preview, never the whole payload",
        examples=["eyJqb2JfaWQiOiAiai01ZjFjMmU3YTliIn0="],
    )
    occurred_at: OccurredAt = Field(default_factory=lambda: datetime.now(UTC))


ALL_EVENTS: tuple[type[Event], ...] = (
    JobSubmitted,
    SegmentRequested,
    SegmentGenerated,
    SegmentEncoded,
    SegmentChecked,
    SegmentDelivered,
    SegmentTakeSelected,
    SegmentFailed,
    FilmRequested,
    FilmEncoded,
    FilmDeliverablesStored,
    FilmChecked,
    JobCompleted,
    JobFailed,
    WebhookRequested,
    WebhookFailed,
    JobCancelled,
    SegmentRerenderRequested,
    RenditionRequested,
    RenditionEncoded,
    RenditionFailed,
)
EVENTS_BY_SUBJECT: dict[str, type[Event]] = {e.subject: e for e in ALL_EVENTS}


def json_schema() -> dict:
    """JSON Schema of every event, keyed by subject: the document downstream users read."""
    return {cls.subject: cls.model_json_schema() for cls in ALL_EVENTS}
