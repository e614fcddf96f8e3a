"""The bus contract: every event on NATS, its subject and its version, in one module.

Subjects are ``{prefix}.{Event.subject}`` (prefix from ``REELFORGE_SUBJECT_PREFIX``). Facts are
named in the past tense, commands imperatively. Each event has a deterministic
:meth:`Event.dedup_id` that becomes its ``Nats-Msg-Id``, so a repeated publish (a retry, a
redelivered trigger) is stored once. Additive changes add optional fields; a breaking change adds a
new model with ``schema_version = 2`` on a new subject. ``reelforge schema`` prints the JSON Schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

_JobId = Field(description="job id returned by the gateway", examples=["j-5f1c2e7a9b"])
_Index = Field(ge=1, description="1-based position of the segment in the storyboard; keys use {index:03d}")

_QA_EXAMPLE = {
    "passed": True,
    "measured": {"codec": "h264", "duration_s": 2.0},
    "gates": {"technical": {"score": 1.0, "threshold": 1.0, "passed": True, "detail": ""}},
}
_MODEL_EXAMPLE = {"name": "stabilityai/stable-diffusion-2-1", "pipeline": "StableDiffusionPipeline", "random_weights": False}
# What each field means, by name (``Class.field`` first): the AsyncAPI document and JSON Schema carry it
# for every field that does not say more itself. A test keeps it complete: a new field needs an entry.
FIELD_DOCS: dict[str, tuple[str, Any]] = {
    "schema_version": ("version of this event's schema; a breaking change is a new model on a new subject", 1),
    "event_id": ("unique id of this publication (a republished fact gets a new one)", "5b0c1f7e2d8a4c6b9e3f1a2d4c6b8e0f"),
    "occurred_at": ("when the event was created (UTC)", "2026-11-28T01:00:00Z"),
    "job_id": ("job id returned by the gateway", "j-5f1c2e7a9b"),
    "index": ("1-based position of the segment in the storyboard; keys use {index:03d}", 1),
    "segment_id": ("the storyboard's id of the segment", "open"),
    "attempt": ("render attempt of the segment: 1, then one more per QA regeneration", 1),
    "resume": ("times the job was resumed after it failed (0: never); part of the de-duplication id", 0),
    "title": ("the storyboard's title", "Der Apfelbaum"),
    "segment_count": ("number of segments in the job", 33),
    "duration_s": ("duration in seconds", 8.0),
    "storyboard_key": ("work-bucket key of the stored storyboard", "jobs/j-5f1c2e7a9b/storyboard.json"),
    "spec": (
        "what to render, resolved from the storyboard",
        {
            "prompt": "documentary still, an apple tree in spring",
            "negative_prompt": "blurry",
            "seed": 1042,
            "frames": 24,
            "fps": 3.0,
            "width": 1920,
            "height": 1080,
        },
    ),
    "SegmentRequested.model": ("model id or path; unset: the generator's REELFORGE_MODEL", "stabilityai/stable-diffusion-2-1"),
    "model": ("the model that rendered the frames", _MODEL_EXAMPLE),
    "name": ("Hugging Face id or local path of the model", "stabilityai/stable-diffusion-2-1"),
    "pipeline": ("diffusers pipeline class read from the model", "StableDiffusionPipeline"),
    "random_weights": ("true for Reelforge's tiny random-weight test models", False),
    "prompt": ("full prompt (action, cast, location, style and light folded in)", "an apple tree in spring, documentary still"),
    "negative_prompt": ("what to avoid", "blurry, low quality"),
    "seed": ("segment seed (cast/location seed family + position)", 1042),
    "character_seeds": ("seeds of the characters in the shot", [1000]),
    "location_seed": ("seed of the location", 5000),
    "reference_images": ("work-bucket keys of reference images (consistency)", ["jobs/j-5f1c2e7a9b/refs/hero.png"]),
    "SegmentRerenderRequested.reference_images": (
        "work-bucket keys of images that steer the new render (IP-Adapter, or image-to-video's conditioning image), "
        "after the cast's own; continuity QA gives a frame of the best-matching segment",
        ["jobs/j-5f1c2e7a9b/segments/005/attempt-2/reference.png"],
    ),
    "frames": ("frames to render", 24),
    "steps": ("denoising steps of this segment; unset: the generator's", 25),
    "guidance": ("guidance scale of this segment; unset: the generator's", 7.5),
    "frame_count": ("frames in the output", 24),
    "fps": ("frames per second", 3.0),
    "width": ("width in pixels", 1920),
    "height": ("height in pixels", 1080),
    "frames_prefix": ("work-bucket prefix of the PNG frames", "jobs/j-5f1c2e7a9b/segments/001/frames/"),
    "degraded": ("what was given up to finish (smaller batch, lower size)", "batch 8 -> 4 after out-of-memory"),
    "SegmentGenerated.prompt": (
        "the prompt as the model was given it (seed 004's sound tags removed for a model without sound)",
        "a young man plants an apple sapling, in a farmland field, documentary still, daylight 5500K",
    ),
    "prompt_tokens": ("tokens of the prompt, counted with the model's own tokenizer", 96),
    "prompt_tokens_dropped": ("prompt tokens the model did not see (0: the whole prompt was encoded)", 0),
    "render_s": ("seconds the generator spent rendering the segment's missing frames", 10.3),
    "s_per_frame": ("render seconds per frame rendered", 0.43),
    "audio_key": (
        "work-bucket key of the sound the model made with the frames (WAV, the segment's length); unset: no sound",
        "jobs/j-5f1c2e7a9b/segments/001/audio.wav",
    ),
    "peak_vram_bytes": ("peak GPU memory PyTorch allocated while rendering; unset on a CPU", 35970351104),
    "has_audio": ("the segment MP4 carries sound (the model's, narration or an audio file)", False),
    "video_key": ("work-bucket key of the segment's MP4", "jobs/j-5f1c2e7a9b/segments/001/segment.mp4"),
    "score": ("0 (bad) to 1 (good)", 0.93),
    "threshold": ("the score needed to pass", 0.5),
    "passed": ("whether it passed", True),
    "detail": ("why, in words", "laplacian variance 212 over 150"),
    "gates": ("gate name -> verdict", _QA_EXAMPLE["gates"]),
    "measured": ("what was read back from the file", _QA_EXAMPLE["measured"]),
    "qa": ("QA's verdict on the segment", _QA_EXAMPLE),
    "report_key": ("key of the job report (JSON)", "jobs/j-5f1c2e7a9b/report.json"),
    "report_html_key": ("key of the job report (HTML)", "jobs/j-5f1c2e7a9b/report.html"),
    "delivery_bucket": ("S3 bucket the job was delivered to", "f1-video-clips"),
    "delivery_key": ("key in the delivery bucket", "j-5f1c2e7a9b/segments/001.mp4"),
    "url": ("public URL (presigned S3 GET, or the GitLab upload)", "https://gitlab.com/-/project/42/uploads/0f1e/001.mp4"),
    "storage_provider": ("where the video was delivered (GitLab over 1 MiB)", "s3"),
    "parts": ("more than 1: the video was split and url is the manifest JSON of its parts", 1),
    "stage": ("service that gave up", "encoder"),
    "error": ("what went wrong", "TransientError: S3 put 'jobs/j-5f1c2e7a9b/final.mp4' failed"),
    "film_key": ("key of the film", "jobs/j-5f1c2e7a9b/final.mp4"),
    "deliverables": ("extra renditions: name -> key", {"9x16": "j-5f1c2e7a9b/final_9x16.mp4"}),
    "film_url": (
        "public URL of the film (presigned S3 GET, or GitLab)",
        "http://127.0.0.1:9000/f1-video-clips/j-5f1c2e7a9b/final.mp4?X-Amz-...",
    ),
    "film_storage_provider": ("where the film was delivered", "s3"),
    "film_parts": ("more than 1: the film was split and film_url is the manifest of its parts", 1),
    "report_url": (
        "public URL of the job report (JSON)",
        "http://127.0.0.1:9000/f1-video-clips/j-5f1c2e7a9b/report.json?X-Amz-...",
    ),
    "qa_failed_segments": ("indexes of segments delivered with a failed QA gate", [4]),
    "film_qa_passed": ("QA's verdict on the whole film (continuity, joins)", True),
    "webhook_id": ("Standard Webhooks webhook-id: the same on every retry", "msg_2f1c0e7a9b3d"),
    "type": ("subject of the event delivered", "job.completed"),
    "data": ("the event delivered, as JSON (the body's data field)", {"job_id": "j-5f1c2e7a9b", "error": "disk full"}),
    "service": ("service that gave up", "encoder"),
    "subject": ("subject the message came on", "reelforge.segment.encoded"),
    "deliveries": ("deliveries before it was dead-lettered", 4),
    "payload": ("the original message body, as text", '{"job_id": "j-5f1c2e7a9b"}'),
    "version": ("film version: 1, then one more per segment re-render", 1),
    "by": ("name of the API token that cancelled it", "ci"),
}


def _document(schema: dict[str, Any], cls: type) -> None:
    """Fill in description and examples of each property from FIELD_DOCS (a field's own wins)."""
    for name, prop in schema.get("properties", {}).items():
        doc = FIELD_DOCS.get(f"{cls.__name__}.{name}") or FIELD_DOCS.get(name)
        if doc is not None:
            prop.setdefault("description", doc[0])
            prop.setdefault("examples", [doc[1]])


_DOCUMENTED = ConfigDict(frozen=True, json_schema_extra=_document)


class Event(BaseModel):
    """Envelope fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore", json_schema_extra=_document)  # ignore: newer producers may add fields

    subject: ClassVar[str]
    schema_version: Literal[1] = 1
    event_id: str = Field(default_factory=lambda: uuid4().hex)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    job_id: str = _JobId
    resume: int = Field(0, ge=0, description="times the job was resumed after it failed (0: never)")

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
        attempt, which is part of the de-duplication id); a regeneration names its new attempt
        with :meth:`SegmentEvent.retry` instead.
        """
        envelope = _envelope(cls, source)
        if clash := sorted(envelope.keys() & fields.keys()):
            raise TypeError(f"{cls.__name__}.follow: {', '.join(clash)} come from the source event; do not pass them")
        return cls(**envelope, **fields)

    def failure(self, stage: str, error: str) -> Event:
        """The event that records this event's failure for good."""
        return JobFailed.follow(self, stage=stage, error=error)


class ModelInfo(BaseModel):
    model_config = _DOCUMENTED
    name: str = Field(description="Hugging Face id or local path of the model")
    pipeline: str = Field(description="diffusers pipeline class read from the model")
    random_weights: bool = Field(description="true for Reelforge's tiny random-weight test models")


class RenderSpec(BaseModel):
    """Everything the generator needs for one segment, resolved from the storyboard."""

    model_config = _DOCUMENTED
    prompt: str
    negative_prompt: str = ""
    seed: int = Field(ge=0, lt=2**32, description="segment seed (cast/location seed family + position)")
    character_seeds: list[int] = Field(default_factory=list)
    location_seed: int | None = None
    reference_images: list[str] = Field(default_factory=list)
    frames: int = Field(ge=1)
    fps: float = Field(gt=0)
    width: int = Field(description="delivery width; the generator renders at its own size")
    height: int
    steps: int | None = Field(None, ge=1, le=200, description="denoising steps of this segment; unset: the generator's")
    guidance: float | None = Field(None, ge=0, le=50, description="guidance scale of this segment; unset: the generator's")
    speech: str | None = Field(
        None,
        description="seed 004's <S>...<E>: spoken in the segment (narration; a sound model may voice it)",
        examples=["Prost, auf den Baum!"],
    )
    audio_caption: str | None = Field(
        None,
        description="seed 004's <AUDCAP>...<ENDAUDCAP>: the scene's sound, for models that generate sound; not in prompt",
        examples=["wind in the leaves, birds"],
    )


class SegmentEvent(Event):
    index: int = _Index
    segment_id: str = Field(description="the storyboard's id of the segment")
    attempt: int = Field(1, ge=1)

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.job_id}:{self.index:03d}:{self.attempt}{self._run()}"

    @classmethod
    def retry(cls, source: SegmentEvent, attempt: int, **fields: Any) -> Self:
        """Like :meth:`follow`, for a regeneration: the one place an attempt changes, and only upwards."""
        if attempt <= source.attempt:
            raise ValueError(f"a retry of attempt {source.attempt} needs a later attempt, got attempt={attempt}")
        envelope = _envelope(cls, source) | {"attempt": attempt}
        if clash := sorted(envelope.keys() & fields.keys()):
            raise TypeError(f"{cls.__name__}.retry: {', '.join(clash)} come from the source event; do not pass them")
        return cls(**envelope, **fields)

    def failure(self, stage: str, error: str) -> Event:
        return SegmentFailed.follow(self, stage=stage, error=error)


class JobSubmitted(Event):
    subject: ClassVar[str] = "job.submitted"
    title: str
    segment_count: int
    duration_s: float
    storyboard_key: str


class SegmentRequested(SegmentEvent):
    """Command: render this segment's frames."""

    subject: ClassVar[str] = "segment.requested"
    spec: RenderSpec
    model: str | None = Field(None, description="model id or path; unset: the generator's REELFORGE_MODEL")


class SegmentGenerated(SegmentEvent):
    subject: ClassVar[str] = "segment.generated"
    frames_prefix: str
    frame_count: int
    fps: float
    width: int
    height: int
    model: ModelInfo
    degraded: str | None = Field(None, description="what was given up to finish (smaller batch, lower size)")
    prompt: str | None = None
    prompt_tokens: int | None = Field(None, ge=0)
    prompt_tokens_dropped: int | None = Field(None, ge=0)
    render_s: float | None = Field(None, ge=0)
    s_per_frame: float | None = Field(None, ge=0)
    peak_vram_bytes: int | None = Field(None, ge=0)
    audio_key: str | None = None


class SegmentEncoded(SegmentEvent):
    subject: ClassVar[str] = "segment.encoded"
    video_key: str
    frame_count: int
    fps: float
    width: int
    height: int
    duration_s: float
    model: ModelInfo
    has_audio: bool = False


class QaGate(BaseModel):
    model_config = _DOCUMENTED
    score: float = Field(ge=0, le=1)
    threshold: float
    passed: bool
    detail: str = ""


class QaReport(BaseModel):
    model_config = _DOCUMENTED
    passed: bool
    gates: dict[str, QaGate]
    measured: dict[str, float | str | int] = Field(default_factory=dict, description="what was read back from the file")


class SegmentChecked(SegmentEvent):
    subject: ClassVar[str] = "segment.checked"
    video_key: str
    duration_s: float
    qa: QaReport
    report_key: str
    model: ModelInfo


class SegmentDelivered(SegmentEvent):
    """Fact for downstream users: a segment is in the delivery bucket."""

    subject: ClassVar[str] = "segment.delivered"
    video_key: str
    delivery_bucket: str
    delivery_key: str
    url: str
    storage_provider: Literal["s3", "gitlab"] = Field("s3", description="where the video was delivered (GitLab over 1 MiB)")
    parts: int = Field(1, ge=1, description="more than 1: the video was split and url is the manifest JSON of its parts")
    duration_s: float
    qa: QaReport
    model: ModelInfo


class SegmentFailed(SegmentEvent):
    subject: ClassVar[str] = "segment.failed"
    stage: str = Field(description="service that gave up")
    error: str

    def failure(self, stage: str, error: str) -> Event:  # a failure of a failure is not re-announced
        return self


class FilmEvent(Event):
    """An event about one version of a job's film; the version travels from event to event (:meth:`Event.follow`)."""

    version: int = Field(1, ge=1, description="film version: 1, then one more per segment re-render; earlier versions stay")

    def dedup_id(self) -> str:
        base = f"{self.subject}:{self.job_id}"
        return (base if self.version == 1 else f"{base}:v{self.version}") + self._run()


class FilmRequested(FilmEvent):
    """Command: every segment is delivered, compile the film (published once per film version, by the job ledger)."""

    subject: ClassVar[str] = "film.requested"
    segment_count: int


class FilmEncoded(FilmEvent):
    subject: ClassVar[str] = "film.encoded"
    film_key: str
    duration_s: float
    frame_count: int
    fps: float
    width: int
    height: int


class FilmChecked(FilmEvent):
    """QA's verdict on the whole film (continuity, transitions), with the job's reports written to S3."""

    subject: ClassVar[str] = "film.checked"
    film_key: str
    duration_s: float
    frame_count: int
    fps: float
    width: int
    height: int
    passed: bool
    deliverables: dict[str, str] = Field(default_factory=dict, description="extra renditions: name -> work-bucket key")
    report_key: str = Field(description="job report (JSON) in the work bucket")
    report_html_key: str | None = Field(None, description="job report (HTML) in the work bucket")


class JobCompleted(FilmEvent):
    """Fact for downstream users: the film and its report are delivered."""

    subject: ClassVar[str] = "job.completed"
    delivery_bucket: str
    film_key: str
    film_url: str
    film_storage_provider: Literal["s3", "gitlab"] = Field("s3", description="where the film was delivered")
    film_parts: int = Field(1, ge=1, description="more than 1: the film was split and film_url is the manifest of its parts")
    report_key: str
    report_url: str
    duration_s: float
    segment_count: int
    qa_failed_segments: list[int] = Field(default_factory=list)
    report_html_key: str | None = None
    deliverables: dict[str, str] = Field(default_factory=dict, description="name -> delivery-bucket key")
    film_qa_passed: bool | None = None


class JobFailed(Event):
    subject: ClassVar[str] = "job.failed"
    stage: str
    error: str

    def failure(self, stage: str, error: str) -> Event:
        return self


class SegmentRerenderRequested(Event):
    """Command: render one segment of the job again (new seed and/or prompt); the film gets a new version.

    The gateway handles it with :func:`reelforge_shared.jobs.rerender_segment`; a service that wants
    a segment again (continuity QA) returns this event instead of calling the function.
    """

    subject: ClassVar[str] = "segment.rerender_requested"
    index: int = _Index
    seed: int | None = Field(None, ge=0, lt=2**32, description="new seed (unset: the segment's seed)")
    prompt: str | None = Field(None, min_length=1, description="new prompt (unset: the storyboard's)")
    reason: str = Field("", description="why, for the ledger's change list", examples=["continuity: hero's shirt changed colour"])
    reference_images: list[str] = Field(default_factory=list)

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.job_id}:{self.index:03d}:{self.event_id}"


class JobCancelled(Event):
    """Fact: the job was cancelled; no later stage starts, and what was stored stays."""

    subject: ClassVar[str] = "job.cancelled"
    by: str | None = Field(None, description="name of the API token that cancelled it", examples=["ci"])


_SEGMENT_ENVELOPE = ("index", "segment_id", "attempt")


def _envelope(cls: type[Event], source: Event) -> dict[str, Any]:
    """The fields an event built from ``source`` inherits: the job, and the segment between segment events."""
    envelope: dict[str, Any] = {"job_id": source.job_id, "resume": source.resume}
    if issubclass(cls, SegmentEvent) and isinstance(source, SegmentEvent):
        envelope |= {name: getattr(source, name) for name in _SEGMENT_ENVELOPE}
    if issubclass(cls, FilmEvent) and isinstance(source, FilmEvent):
        envelope["version"] = source.version
    return envelope


def lost_envelope(source: Event, result: Event) -> str | None:
    """Why ``result`` cannot have come from ``source`` (an earlier attempt of the same segment), else None.

    The runner checks every published event with it, so a handler that builds an event by hand and
    drops the attempt fails loudly instead of having its event dropped as a duplicate.
    """
    if result.job_id == source.job_id and result.resume < source.resume:
        return (
            f"{type(result).__name__} carries resume {result.resume}, but it follows resume {source.resume}: "
            f"build it with {type(result).__name__}.follow(event, ...)"
        )
    if (
        isinstance(source, SegmentEvent)
        and isinstance(result, SegmentEvent)
        and (result.job_id, result.index) == (source.job_id, source.index)
    ):
        if result.attempt < source.attempt:
            return (
                f"{type(result).__name__} of segment {result.index} carries attempt {result.attempt}, "
                f"but it follows attempt {source.attempt}: build it with {type(result).__name__}.follow(event, ...)"
            )
    return None


class WebhookRequested(Event):
    """Command: POST one event to one webhook target, signed (Standard Webhooks); retried for a day."""

    subject: ClassVar[str] = "webhook.requested"
    webhook_id: str = Field(description="Standard Webhooks webhook-id: the same on every retry", examples=["msg_2f1c0e7a9b3d"])
    url: str = Field(description="target URL", examples=["https://hooks.example.com/reelforge"])
    type: str = Field(description="subject of the event delivered", examples=["job.completed"])
    data: dict[str, Any] = Field(description="the event delivered, as JSON (the body's data field)")

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.webhook_id}"

    def failure(self, stage: str, error: str) -> Event:
        return WebhookFailed.follow(self, webhook_id=self.webhook_id, url=self.url, type=self.type, error=error)


class WebhookFailed(Event):
    """Fact: a webhook target did not take the event: refused (410 Gone, an internal target) or every retry failed."""

    subject: ClassVar[str] = "webhook.failed"
    webhook_id: str = Field(description="the webhook-id every attempt carried")
    url: str = Field(description="target URL")
    type: str = Field(description="subject of the event that was not delivered", examples=["job.completed"])
    error: str = Field(description="the last attempt's error")

    def dedup_id(self) -> str:
        return f"{self.subject}:{self.webhook_id}"

    def failure(self, stage: str, error: str) -> Event:
        return self


class DeadLetter(BaseModel):
    """What a dead-letter subject (``{prefix}.dead.{service}``) carries; not an Event: it may not parse."""

    model_config = ConfigDict(json_schema_extra=_document)

    service: str
    subject: str
    deliveries: int
    error: str
    payload: str = Field(description="the original message body, as text")
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


ALL_EVENTS: tuple[type[Event], ...] = (
    JobSubmitted,
    SegmentRequested,
    SegmentGenerated,
    SegmentEncoded,
    SegmentChecked,
    SegmentDelivered,
    SegmentFailed,
    FilmRequested,
    FilmEncoded,
    FilmChecked,
    JobCompleted,
    JobFailed,
    WebhookRequested,
    WebhookFailed,
    JobCancelled,
    SegmentRerenderRequested,
)
EVENTS_BY_SUBJECT: dict[str, type[Event]] = {e.subject: e for e in ALL_EVENTS}


def json_schema() -> dict:
    """JSON Schema of every event, keyed by subject: the document downstream users read."""
    return {cls.subject: cls.model_json_schema() for cls in ALL_EVENTS}
