"""Shots are content-addressed: a segment's shot key, and the owner's store of shots that passed their gates.

A segment's **shot key** is the SHA-256 of its canonical render spec (:func:`shot_key`): everything that
decides its pixels and nothing else.

- from the segment (:class:`~reelforge_shared.events.RenderSpec`): the prompt (the generator derives
  what the model reads from it and the pipeline class, both in the key), negative prompt, seed, frames,
  fps, output size, the segment's own steps and guidance, the speech and sound tags;
- every conditioning input by content: a reference image in the work bucket by the SHA-256 of its bytes,
  any other reference (a path or URL, which no worker opens, see docs) by its text; the previous shot's
  key when the segment continues from it (``spec.start_frame``, :mod:`reelforge_shared.chain`); the shot key
  of each cast sheet image it is conditioned on (``spec.cast_sheet``, :func:`sheet_key`), so a changed
  character description renders the sheet and every segment using it again;
- from the generator (:class:`RenderProfile`, one per model and worker settings): the model id, its
  file revision (the Hugging Face snapshot commit, else the SHA-256 of ``model_index.json`` and every
  ``config.json``/``scheduler_config.json`` under it), the pipeline class, the scheduler and its config,
  the default steps and guidance, how the generation size is derived from the output size (the
  configured width and the model's size multiple: with the spec's size they fix the generation size),
  dtype and device type, and every generator setting that changes the picture (motion, clip frames,
  img2img strength, IP-Adapter and its scale, keyframe model, quality mode);
- :data:`RENDER_CODE_VERSION`: bumped by hand whenever a change of the render code changes pixels.

Speed levers (batch size, attention kernel, compile, channels_last) are left out: they change the work,
not the picture beyond float noise.

The generator writes its profile for a model to the work bucket (``Keys.render_profile``) when it
loads the model, so the submitter (gateway, ``reelforge run``) computes the same key before any work
is queued and puts it in ``segment.requested``; the generator computes it again with its live profile
and the key it reports in ``segment.generated`` is the one the frames have.

**The shot store** is owner-scoped: ``shots/{owner}/{key}/shot.json`` (:class:`StoredShot`) points
at the frames of a shot that passed its segment gates (written by segment QA). A submission whose
segment has a stored key reuses those frames (:func:`reuse_shot`): they are copied into the new job's
segment folder (server-side), ``segment.generated`` is published with ``reused_from`` and no
generator work is done; the encoder, QA (film continuity included) and the uploader treat the segment
as any other. A stored shot whose frames are gone (retention) is not reused; it is rendered again.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reelforge_shared.events import (
    CastSheet,
    ModelInfo,
    RenderSpec,
    ReusedFrom,
    SegmentEncoded,
    SegmentGenerated,
    SegmentRequested,
)
from reelforge_shared.owner import LOCAL_OWNER
from reelforge_shared.storage import Keys, ObjectStore

RENDER_CODE_VERSION = "1"  # bump when a change to the generator's render code changes the pixels it makes
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RENDER_FIGURES = ("render_s", "s_per_frame", "peak_vram_bytes")  # a reused shot took no render time
_CONFIG_FILES = ("model_index.json", "config.json", "scheduler_config.json")


class RenderProfile(BaseModel):
    """What a generator worker adds to a spec to render it: its model's identity and its picture settings."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="model id or path as requested")
    revision: str = Field(description="the model files' revision: HF snapshot commit or SHA-256 of its configs")
    pipeline: str = Field(description="diffusers pipeline class")
    scheduler: str = Field("", description="scheduler class and the SHA-256 of its config")
    steps: int | None = Field(None, description="denoising steps of a segment that sets none")
    guidance: float | None = Field(None, description="guidance of a segment that sets none")
    generation_width: int | None = Field(None, description="configured render width (the generation size follows from it)")
    size_multiple: int | None = Field(None, description="generation sizes are rounded to this")
    dtype: str = ""
    device: str = Field("", description="device type: cpu or cuda")
    options: dict[str, Any] = Field(default_factory=dict, description="every other generator setting that changes pixels")

    def digest(self) -> str:
        return json_digest(self.model_dump(mode="json"))


class StoredShot(BaseModel):
    """A shot in the owner's store: where its frames are and what made them."""

    key: str
    owner: str
    job_id: str
    index: int
    segment_id: str
    attempt: int
    take: int = 0
    frames_prefix: str
    frame_count: int
    fps: float
    width: int
    height: int
    model: ModelInfo
    audio_key: str | None = None
    generation_key: str | None = Field(None, description="the generator's record of the render (prompt, figures)")

    def source(self) -> ReusedFrom:
        return ReusedFrom(job_id=self.job_id, index=self.index, attempt=self.attempt, take=self.take, shot_key=self.key)


class ShotPlan(BaseModel):
    """A job's shots as submitted (``Keys.shot_plan``): whose they are, and which were reused from where."""

    owner: str | None = None
    reuse: bool = True
    keys: dict[int, str | None] = Field(default_factory=dict, description="segment index -> shot key asked for")
    reused: dict[int, ReusedFrom] = Field(default_factory=dict, description="segment index -> the render reused")


def json_digest(value: Any) -> str:
    """SHA-256 (hex) of ``value`` as canonical JSON (sorted keys; what JSON cannot hold, as its text)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def owner_folder(owner: str | None) -> str:
    """The owner's folder name: the token name when it is a plain name, else its hash (never a path)."""
    if owner is None:
        return LOCAL_OWNER
    return owner if _OWNER.match(owner) else "h-" + hashlib.sha256(owner.encode()).hexdigest()[:32]


def reference_hashes(spec: RenderSpec, store: ObjectStore | None, bucket: str) -> list[str]:
    """Each reference image by content: a work-bucket object by the SHA-256 of its bytes, anything else by its text."""
    out = []
    for ref in spec.reference_images:
        if store is not None and ref.startswith("jobs/") and store.exists(bucket, ref):
            out.append("sha256:" + hashlib.sha256(store.get_bytes(bucket, ref)).hexdigest())
        else:
            out.append("ref:" + ref)
    return out


def _no_handles(spec: RenderSpec) -> set[str]:
    return set() if spec.handles else {"handles"}


def shot_key(spec: RenderSpec, profile: RenderProfile, references: list[str]) -> str:
    """SHA-256 (hex) of the canonical render spec: the same spec, the same key; any input changed, another key.

    A segment that continues from the shot before it (``spec.start_frame``) counts that shot by its key, not by
    where its frame lies: the same previous shot in another job gives the same key.
    """
    canonical = {
        "code": RENDER_CODE_VERSION,
        # handles absent at 0: the keys of shots made before RenderSpec.handles stay what they were
        "spec": spec.model_dump(mode="json", exclude={"reference_images", "start_frame", "cast_sheet", *_no_handles(spec)}),
        "references": references,
        "previous": spec.start_frame.shot_key if spec.start_frame is not None else None,
        "profile": profile.model_dump(mode="json"),
    }
    if spec.cast_sheet:  # absent without a sheet: the keys of shots made before cast sheets stay what they were
        canonical["sheets"] = [sheet_key(spec, sheet, profile) for sheet in spec.cast_sheet]
    return json_digest(canonical)


SHEET_FPS = 1.0  # a sheet is one still: the segment's frame rate is no part of it, so segments of any rate share it


def sheet_spec(spec: RenderSpec, sheet: CastSheet) -> RenderSpec:
    """What a cast sheet image is rendered from: one frame of its prompt and seed at the segment's output size."""
    return RenderSpec(
        prompt=sheet.prompt,
        negative_prompt=spec.negative_prompt,
        seed=sheet.seed,
        frames=1,
        fps=SHEET_FPS,
        width=spec.width,
        height=spec.height,
    )


def sheet_key(spec: RenderSpec, sheet: CastSheet, profile: RenderProfile) -> str:
    """The shot key of a cast sheet image (its own shot: the same character, model and size, the same key)."""
    return shot_key(sheet_spec(spec, sheet), profile, [])


def model_revision(path: str) -> str:
    """The revision of a model folder: its Hugging Face snapshot commit, else the SHA-256 of its config files."""
    folder = Path(path).expanduser()
    if folder.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", folder.name):
        return f"hf:{folder.name}"
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*.json") if p.name in _CONFIG_FILES) if folder.is_dir() else []
    for file in files:
        digest.update(str(file.relative_to(folder)).encode() + b"\0" + file.read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()}" if files else f"name:{path}"


def load_profile(store: ObjectStore, bucket: str, model: str) -> RenderProfile | None:
    """The profile the generator last wrote for ``model`` (None: it never loaded it, so no shot of it exists)."""
    key = Keys.render_profile(model)
    if not store.exists(bucket, key):
        return None
    return RenderProfile.model_validate(store.get_json(bucket, key))


def save_profile(store: ObjectStore, bucket: str, profile: RenderProfile) -> None:
    store.put_json(bucket, Keys.render_profile(profile.model), profile.model_dump(mode="json"))


def find_shot(store: ObjectStore, bucket: str, owner: str | None, key: str) -> StoredShot | None:
    """The owner's stored shot of ``key`` whose frames are all still there, else None."""
    record = Keys.shot_record(owner_folder(owner), key)
    if not store.exists(bucket, record):
        return None
    shot = StoredShot.model_validate(store.get_json(bucket, record))
    if len(store.list_keys(bucket, shot.frames_prefix)) < shot.frame_count:
        return None  # its job's frames are gone (retention): render it again
    return shot


def keep_shot(store: ObjectStore, bucket: str, shot: StoredShot) -> None:
    """Record a shot that passed its gates in its owner's store (the latest passing render of a key wins)."""
    store.put_json(bucket, Keys.shot_record(owner_folder(shot.owner), shot.key), shot.model_dump(mode="json"))


def reuse_shot(store: ObjectStore, bucket: str, request: SegmentRequested, shot: StoredShot) -> SegmentGenerated:
    """Copy ``shot``'s frames (and sound, and render record) into the requested segment's folder; its ``segment.generated``."""
    job, n, attempt, take = request.job_id, request.index, request.attempt, request.take
    for source in store.list_keys(bucket, shot.frames_prefix):
        store.copy(bucket, source, bucket, Keys.frames(job, n, attempt, take) + source.rsplit("/", 1)[-1])
    audio_key = None
    if shot.audio_key is not None:
        audio_key = Keys.segment_audio(job, n, attempt, take)
        store.copy(bucket, shot.audio_key, bucket, audio_key)
    record: dict[str, Any] = {}
    if shot.generation_key is not None and store.exists(bucket, shot.generation_key):
        record = {k: v for k, v in store.get_json(bucket, shot.generation_key).items() if k not in _RENDER_FIGURES}
    reused = shot.source()
    start = request.spec.start_frame.model_dump() if request.spec.start_frame is not None else None  # this job's frame
    facts = {"shot_key": shot.key, "reused_from": reused.model_dump(), "start_frame": start}
    store.put_json(bucket, Keys.segment_generation(job, n, attempt, take), record | facts)
    return SegmentGenerated.follow(
        request,
        frames_prefix=Keys.frames(job, n, attempt, take),
        frame_count=shot.frame_count,
        fps=shot.fps,
        width=shot.width,
        height=shot.height,
        model=shot.model,
        prompt=record.get("prompt"),
        prompt_tokens=record.get("prompt_tokens"),
        prompt_tokens_dropped=record.get("prompt_tokens_dropped"),
        audio_key=audio_key,
        shot_key=shot.key,
        reused_from=reused,
    )


def keep_passed_shot(store: ObjectStore, bucket: str, event: SegmentEncoded, passed: bool) -> StoredShot | None:
    """Segment QA's call once it scored a segment: a shot that passed its gates goes into its owner's store.

    The key is the generator's (beside the frames), the owner the submission's (``Keys.shot_plan``); a job
    submitted without a plan (before shot keys existed, an image-to-video request) keeps nothing.
    """
    job, n, attempt, take = event.job_id, event.index, event.attempt, event.take
    generation_key, plan_key = Keys.segment_generation(job, n, attempt, take), Keys.shot_plan(job)
    if not passed or not store.exists(bucket, plan_key) or not store.exists(bucket, generation_key):
        return None
    generated = store.get_json(bucket, generation_key)
    key = generated.get("shot_key")
    if key is None:
        return None
    audio_key = Keys.segment_audio(job, n, attempt, take)
    shot = StoredShot(
        key=key,
        owner=owner_folder(ShotPlan.model_validate(store.get_json(bucket, plan_key)).owner),
        job_id=job,
        index=n,
        segment_id=event.segment_id,
        attempt=attempt,
        take=take,
        frames_prefix=Keys.frames(job, n, attempt, take),
        frame_count=generated["frame_count"],
        fps=generated["fps"],
        width=generated["width"],
        height=generated["height"],
        model=event.model,
        audio_key=audio_key if store.exists(bucket, audio_key) else None,
        generation_key=generation_key,
    )
    keep_shot(store, bucket, shot)
    return shot


class ShotRequests:
    """The ``segment.requested`` of a job's segments with their shot keys, and the reuse of those already rendered.

    One per submission (or new storyboard version): it reads each model's profile once.
    """

    def __init__(self, store: ObjectStore, bucket: str, *, owner: str | None, reuse: bool) -> None:
        self.store, self.bucket, self.owner, self.reuse = store, bucket, owner, reuse
        self.profiles: dict[str, RenderProfile | None] = {}

    def key(self, spec: RenderSpec, model: str | None) -> str | None:
        """The shot key of ``spec`` rendered by ``model`` (None: the generator never loaded that model, nothing to reuse)."""
        if (name := model or "") not in self.profiles:
            self.profiles[name] = load_profile(self.store, self.bucket, name)
        profile = self.profiles[name]
        return shot_key(spec, profile, reference_hashes(spec, self.store, self.bucket)) if profile is not None else None

    def plan(self, request: SegmentRequested) -> tuple[SegmentRequested, SegmentGenerated | None]:
        """``request`` with its shot key; when the owner has that shot already, its frames copied and ``segment.generated``."""
        request = request.model_copy(update={"shot_key": self.key(request.spec, request.model)})
        if not self.reuse or request.shot_key is None:
            return request, None
        stored = find_shot(self.store, self.bucket, self.owner, request.shot_key)
        this = (request.job_id, request.index, request.attempt, request.take)
        if stored is None or (stored.job_id, stored.index, stored.attempt, stored.take) == this:
            return request, None  # not stored, or a republish of this very render: nothing to copy
        request = request.model_copy(update={"reused_from": stored.source()})
        return request, reuse_shot(self.store, self.bucket, request, stored)
