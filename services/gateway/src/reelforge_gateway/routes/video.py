"""The video endpoints compatible with the ``/api/video/*`` API: one prompt (or one image) in, one MP4 out, as a one-segment job.

``POST /api/video/text-to-video`` (JSON) and ``POST /api/video/image-to-video`` (multipart) each
become a one-segment storyboard that runs through the whole pipeline (generator, encoder, QA,
uploader, the job ledger). The answer is the MP4 (``video/mp4``) when the job completes within
``REELFORGE_SYNC_TIMEOUT_S``, otherwise 202 with the job's links; the same request later gets the
stored video.

- **Cache, per owner.** The job id is a hash of the caller (the token's name) and everything that
  shapes the video (kind, model, prompt, negative prompt, duration, fps, size, seed, steps,
  guidance, quality, the image's bytes), so the same request of the same owner finds its job in the
  ledger and returns the stored film without rendering again; another owner's identical request is
  another job, which nothing the first owner does (cancel, say) can touch. A request without a
  seed gets one derived from the request alone: it is cached too, and renders alike for any owner.
- **Owned.** The job is created in the ledger with the caller as its owner before anything is
  published, like a ``/v1/jobs`` submission; the uploaded image is stored under the job and named
  by its key in the storyboard (never a presigned URL).
- **Model availability, without downloading.** A model is available when it is a local folder with
  a ``model_index.json``, a Hugging Face id whose ``model_index.json`` is in the local Hugging Face
  cache (``HF_HUB_CACHE``), or one of Reelforge's built-in tiny models (``reelforge/tiny-*``, built
  locally). An unavailable model falls back to ``REELFORGE_DEFAULT_TEXT_TO_VIDEO_MODEL`` /
  ``_IMAGE_TO_VIDEO_MODEL`` and the response says so (``X-Reelforge-Model-Fallback`` and, in a 202,
  ``model_fallback``: the ``model_not_found`` error body). If the default is unavailable too: 503
  ``model_not_found``.
- **Prompts that cannot fit.** A prompt longer than the model's text encoder reads is refused (422,
  ``prompt`` named with its count and the limit; :mod:`reelforge_gateway.prompt_fit`).
- **Errors** use the gateway's one shape ``{error, message, details, timestamp}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelforge_gateway.auth import caller_of
from reelforge_gateway.deps import Deps, GatewayDeps, VideoDefaults
from reelforge_gateway.errors import ApiError, ErrorBody, error_response
from reelforge_gateway.form_stream import FileField, StagedFile, check_staged, read_form
from reelforge_gateway.prompt_fit import prompt_errors
from reelforge_gateway.submit import submit_job
from reelforge_shared.errors import InvalidInput
from reelforge_shared.jobs import JobRecord, Ledger
from reelforge_shared.references import EXTENSIONS
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import Storyboard, StoryboardInvalid, StoryboardLimits, parse_storyboard

router = APIRouter(tags=["video"])
TINY_PREFIX = "reelforge/tiny-"
Kind = Literal["text-to-video", "image-to-video"]


class VideoError(ApiError):
    """An error of the video endpoints, in the gateway's one error shape."""

    def __init__(self, status: int, error: str, message: str, **details: Any) -> None:
        super().__init__(status, error, message, **details)

    def response(self) -> JSONResponse:
        return error_response(self.status, self.error, self.message, **self.details)


class VideoParams(BaseModel):
    """The ``/api/video/*`` parameters (``num_inference_steps`` is accepted for ``steps``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    prompt: str = Field(
        min_length=1, max_length=2000, description="what the video shows", examples=["A cat walking through a garden"]
    )
    model: str | None = Field(
        None,
        max_length=300,
        pattern=r"^[A-Za-z0-9_.~/:-]+$",
        description="Hugging Face id or local path; unset: the default model",
        examples=["damo-vilab/text-to-video-ms-1.7b"],
    )
    negative_prompt: str | None = Field(None, max_length=2000, description="what to avoid", examples=["blurry, distorted"])
    duration: float = Field(6, gt=0, description="seconds (at most REELFORGE_MAX_VIDEO_DURATION)", examples=[6])
    fps: int = Field(8, ge=1, le=60, description="frames per second", examples=[8])
    width: int = Field(512, ge=64, le=1920, multiple_of=8, description="pixels", examples=[512])
    height: int = Field(288, ge=64, le=1088, multiple_of=8, description="pixels", examples=[288])
    seed: int | None = Field(
        None, ge=0, lt=2**32, description="unset: derived from the request (so it is cached too)", examples=[42]
    )
    steps: int | None = Field(
        None, ge=1, le=200, alias="num_inference_steps", description="denoising steps; unset: the model's", examples=[25]
    )
    guidance: float | None = Field(None, ge=0, le=50, description="guidance scale; unset: the model's", examples=[7.5])
    quality: Literal["low", "medium", "high"] | None = Field(
        None, description="encoding quality preset; unset: the encoder's REELFORGE_VIDEO_QUALITY", examples=["high"]
    )


class VideoAccepted(BaseModel):
    """202: the video is not ready within REELFORGE_SYNC_TIMEOUT_S; ask again with the same request, or follow the job."""

    job_id: str = Field(examples=["v-3f1c2e7a9b0d4e5f"])
    status: str = Field(description="the job's status in the ledger", examples=["running"])
    status_url: str = Field(examples=["/v1/jobs/v-3f1c2e7a9b0d4e5f"])
    model: str = Field(description="the model that renders it", examples=["damo-vilab/text-to-video-ms-1.7b"])
    model_fallback: ErrorBody | None = Field(None, description="set when the requested model was not found and the default used")


def model_available(name: str, hf_cache_dir: str | None = None, allow_test_model: bool = True) -> bool:
    """Judged without downloading: a local model folder, the local Hugging Face cache, or a built-in tiny model
    (where test models are allowed: local mode, or REELFORGE_ALLOW_TEST_MODEL=1, as the generator judges them)."""
    if name.startswith(TINY_PREFIX):
        return allow_test_model
    path = Path(name).expanduser()
    if path.is_dir():
        return (path / "model_index.json").is_file()
    if name.count("/") != 1 or name.startswith((".", "/")):
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "model_index.json", cache_dir=hf_cache_dir), str)
    except ValueError:  # not a valid repo id
        return False


def _resolve_model(requested: str | None, default: str, allow_test_model: bool) -> tuple[str, ErrorBody | None]:
    if requested is None or model_available(requested, allow_test_model=allow_test_model):
        chosen = requested or default
        if requested is None and not model_available(default, allow_test_model=allow_test_model):
            raise VideoError(
                503,
                "model_not_found",
                f"Default model {default!r} is not available on this server",
                requested_model=None,
                fallback_model=default,
            )
        return chosen, None
    if not model_available(default, allow_test_model=allow_test_model):
        raise VideoError(
            503,
            "model_not_found",
            f"Model {requested!r} not found, and the default {default!r} is not available either",
            requested_model=requested,
            fallback_model=default,
        )
    note = ErrorBody(
        error="model_not_found",
        message=f"Model {requested!r} not found; using {default!r}",
        details={"requested_model": requested, "fallback_model": default},
    )
    return default, note


def _check_duration(params: VideoParams, video: VideoDefaults) -> None:
    if params.duration > video.max_duration_s:
        raise VideoError(
            422,
            "invalid_request",
            f"duration: {params.duration} s is above the maximum {video.max_duration_s} s",
            fields=[{"field": "duration", "message": f"at most {video.max_duration_s} (got {params.duration})"}],
        )


def _storyboard(kind: Kind, params: VideoParams, seed: int, image_key: str | None, limits: StoryboardLimits) -> Storyboard:
    frames = max(1, round(params.duration * params.fps))
    segment: dict[str, Any] = {
        "id": "video",
        "prompt": params.prompt,
        "frames": frames,
        "fps": params.fps,
        "seed": seed,
        "steps": params.steps,
        "guidance": params.guidance,
    }
    board: dict[str, Any] = {
        "title": f"{kind}: {params.prompt[:80]}",
        "style": {"negative_prompt": params.negative_prompt or ""},
        "output": {"width": params.width, "height": params.height, "quality": params.quality},
        "segments": [segment],
        "deliverables": {"crops": [], "thumbnail": False},
    }
    if image_key is not None:  # the image conditions the video (image-to-video models) or steers it (IP-Adapter)
        board["characters"] = {"subject": {"description": "the subject of the image", "seed": seed, "reference_image": image_key}}
        segment["characters"] = ["subject"]
    try:
        return parse_storyboard(board, limits)
    except StoryboardInvalid as exc:  # e.g. more frames than a segment may have
        raise VideoError(
            422, "invalid_request", "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors), fields=exc.errors
        ) from None


async def _run(
    kind: Kind, params: VideoParams, deps: GatewayDeps, owner: str, image: StagedFile | None = None, image_type: str = ""
) -> Response:
    """The video of one request; ``image``: the staged upload, checked whole as ``image_type``."""
    video = _video(deps)
    _check_duration(params, video)
    default = video.text_to_video_model if kind == "text-to-video" else video.image_to_video_model
    model, fallback = _resolve_model(params.model, default, video.allow_test_model)
    shape = params.model_dump(exclude={"model", "seed"}) | {"kind": kind, "model": model}
    if image is not None:
        shape["image_sha256"] = image.sha256
    digest = hashlib.sha256(json.dumps(shape | {"seed": params.seed}, sort_keys=True).encode()).hexdigest()
    seed = params.seed if params.seed is not None else int(digest[:8], 16)  # the same request: the same video, any owner
    job_id = "v-" + hashlib.sha256(f"{owner}\n{digest}".encode()).hexdigest()[:20]  # the cache is per owner
    record = await deps.ledger.get(job_id)
    cached = record is not None and record.status != "queued"
    if not cached:  # new, or created but perhaps never published (a request stopped half-way): publish again
        image_key = Keys.input_image(job_id, EXTENSIONS[image_type]) if image is not None else None
        board = _storyboard(kind, params, seed, image_key, deps.limits)
        if errors := await asyncio.to_thread(prompt_errors, board, model):  # longer than the model's text encoder reads
            names = {"style.negative_prompt": "negative_prompt"}  # the request's fields, not the storyboard's
            fields = [{"field": names.get(e["field"], "prompt"), "message": e["message"]} for e in errors]
            raise VideoError(422, "invalid_request", "; ".join(f"{f['field']}: {f['message']}" for f in fields), fields=fields)
        if deps.access.enabled:  # a video job counts against the owner's cap like any submission
            held, in_flight = await deps.ledger.reserve(owner, job_id, deps.max_jobs_in_flight)
            if not held:
                raise VideoError(
                    429,
                    "queue_full",
                    f"{in_flight} jobs of {owner!r} are unfinished (at most {deps.max_jobs_in_flight})",
                    in_flight=in_flight,
                    limit=deps.max_jobs_in_flight,
                )
        if image is not None and image_key is not None:  # valid: only now is it stored under the job
            await asyncio.to_thread(deps.store.copy, deps.work_bucket, image.key, deps.work_bucket, image_key)
        owned = JobRecord(job_id=job_id, title=board.title, segment_count=len(board.segments), owner=owner, body_sha256=digest)
        await deps.ledger.create(owned)
        await submit_job(board, bus=deps.bus, store=deps.store, bucket=deps.work_bucket, job_id=job_id, model=model)
    status = await _wait(deps.ledger, job_id, video.sync_timeout_s)
    headers = {"X-Reelforge-Job": job_id, "X-Reelforge-Model": model, "X-Reelforge-Cache": "hit" if cached else "miss"}
    if fallback is not None:
        headers["X-Reelforge-Model-Fallback"] = fallback.message
    if status == "completed":
        film = await asyncio.to_thread(deps.store.get_bytes, deps.work_bucket, Keys.film(job_id))
        return Response(film, media_type="video/mp4", headers=headers)
    if status in {"failed", "cancelled"}:
        current = await deps.ledger.get(job_id)
        error = current.error if current is not None else None
        raise VideoError(
            502, f"job_{status}", f"the video job {job_id} {status}: {error or 'no detail'}", job_id=job_id, job_error=error
        )
    body = VideoAccepted(job_id=job_id, status=status, status_url=f"/v1/jobs/{job_id}", model=model, model_fallback=fallback)
    return JSONResponse(
        status_code=202, content=body.model_dump(mode="json"), headers=headers | {"Location": f"/v1/jobs/{job_id}"}
    )


async def _wait(ledger: Ledger, job_id: str, timeout_s: float) -> str:
    """The job's status once terminal, or its status when ``timeout_s`` runs out."""
    status = "queued"
    try:
        async with asyncio.timeout(timeout_s):
            async for record in ledger.watch(job_id, heartbeat_s=min(timeout_s, 15.0) or 0.1):
                if record is not None:
                    status = record.status
                    if record.terminal:
                        return status
    except TimeoutError:
        pass
    current = await ledger.get(job_id)
    return current.status if current is not None else status


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"video/mp4": {}},
        "description": "the MP4 (headers: X-Reelforge-Job, X-Reelforge-Model, X-Reelforge-Cache)",
    },
    202: {"model": VideoAccepted, "description": "not ready within REELFORGE_SYNC_TIMEOUT_S; Location is the job"},
    413: {"model": ErrorBody, "description": "body larger than REELFORGE_MAX_UPLOAD_BYTES (`too_large`)"},
    422: {"model": ErrorBody, "description": "invalid request (`invalid_request`, `invalid_image`); details name the field"},
    502: {"model": ErrorBody, "description": "the job failed or was cancelled (`job_failed`, `job_cancelled`)"},
    503: {"model": ErrorBody, "description": "neither the requested nor the default model is available (`model_not_found`)"},
}


@router.post("/api/video/text-to-video", responses=_RESPONSES, response_class=Response)
async def text_to_video(request: Request, params: VideoParams, deps: Deps) -> Response:
    """Render a video from a prompt (a one-segment job through the whole pipeline)."""
    try:
        return await _run("text-to-video", params, deps, caller_of(request))
    except VideoError as exc:
        return exc.response()


_FORM_FIELDS: dict[str, dict[str, Any]] = {
    "prompt": {"type": "string", "maxLength": 2000, "description": "unset: the image, in motion"},
    "model": {"type": "string", "maxLength": 300, "description": "Hugging Face id or local path; unset: the default"},
    "negative_prompt": {"type": "string", "maxLength": 2000},
    "duration": {"type": "number", "exclusiveMinimum": 0, "description": "seconds (at most REELFORGE_MAX_VIDEO_DURATION)"},
    "fps": {"type": "integer", "minimum": 1, "maximum": 60},
    "width": {"type": "integer", "minimum": 64, "maximum": 1920, "multipleOf": 8},
    "height": {"type": "integer", "minimum": 64, "maximum": 1088, "multipleOf": 8},
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    "steps": {"type": "integer", "minimum": 1, "maximum": 200},
    "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 200, "description": "the same as steps"},
    "guidance": {"type": "number", "minimum": 0, "maximum": 50},
    "quality": {"type": "string", "enum": ["low", "medium", "high"]},
}
_IMAGE = {
    "type": "string",
    "format": "binary",
    "description": "PNG, JPEG or WebP within REELFORGE_MAX_IMAGE_PIXELS; the body at most REELFORGE_MAX_UPLOAD_BYTES",
}
_FORM = {"type": "object", "required": ["image"], "properties": {"image": _IMAGE, **_FORM_FIELDS}}


@router.post(
    "/api/video/image-to-video",
    responses=_RESPONSES,
    response_class=Response,
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM}}}},
)
async def image_to_video(request: Request, deps: Deps) -> Response:
    """Render a video from an image (and an optional prompt), as a one-segment job.

    The form is read as it streams (:mod:`reelforge_gateway.form_stream`): the image goes to storage as it comes,
    its header checked first, and it is decoded whole before anything is published.
    """
    staged: StagedFile | None = None
    try:
        file = FileField(
            name="image", audio=False, max_bytes=deps.max_upload_bytes, max_pixels=deps.max_image_pixels, error="invalid_image"
        )
        form, staged = await read_form(request, store=deps.store, bucket=deps.work_bucket, file=file)
        params = _form_params(form)
        if staged is None:
            raise VideoError(
                422, "invalid_request", "image: Field required", fields=[{"field": "image", "message": "Field required"}]
            )
        try:
            content_type = await asyncio.to_thread(
                check_staged, deps.store, deps.work_bucket, staged, "image", deps.reference_limits
            )
        except InvalidInput as exc:
            raise VideoError(
                422, "invalid_image", str(exc), fields=[{"field": "image", "message": str(exc)}], field="image"
            ) from None
        return await _run("image-to-video", params, deps, caller_of(request), staged, content_type)
    except VideoError as exc:
        return exc.response()
    finally:
        if staged is not None:  # moved under its job by now, or refused: the staged copy goes either way
            await asyncio.shield(asyncio.to_thread(deps.store.remove, deps.work_bucket, staged.key))


def _form_params(form: dict[str, str]) -> VideoParams:
    """The form's text fields as VideoParams (an empty field is an unset one; ``steps`` or ``num_inference_steps``)."""
    given = {name: value for name, value in form.items() if name in _FORM_FIELDS and value != ""}
    steps = given.pop("steps", None)
    fields: dict[str, Any] = {"prompt": "the image, in motion"} | given
    if steps is not None:
        fields["num_inference_steps"] = steps
    try:
        return VideoParams.model_validate(fields)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise VideoError(
            422, "invalid_request", "; ".join(f"{e['field']}: {e['message']}" for e in errors), fields=errors
        ) from None


def _video(deps: GatewayDeps) -> VideoDefaults:
    if deps.video is None:
        raise VideoError(503, "unavailable", "the video endpoints are not configured on this gateway")
    return deps.video
