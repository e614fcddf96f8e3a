"""Derived renditions of a film version: the editing utilities (speed, audio, stills, loop, trim, subtitles) on the API.

``POST /v1/jobs/{id}/films/{version}/renditions`` asks for one (the encoder makes it from the stored film,
``reelforge_encoder.derived``); the same kind and parameters are the same rendition (its id is their hash), made
once. ``GET .../renditions/{rendition_id}`` says whether it is ready and gives a short-lived URL; ``GET
.../renditions`` lists them. Every route reads the job through :func:`owned_job`: another token's job is a 404.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from reelforge_gateway.deps import Deps, GatewayDeps
from reelforge_gateway.errors import ApiError
from reelforge_gateway.routes.jobs import JOB_ID, responses
from reelforge_gateway.views import owned_job
from reelforge_shared.events import AudioRendition, RenditionId, RenditionRequested, RenditionSpec, TrimRendition, rendition_id
from reelforge_shared.jobs import JobRecord
from reelforge_shared.storage import Keys

router = APIRouter(tags=["renditions"])
VERSION = Path(ge=1, le=10_000, description="film version")
RID = Path(pattern=r"^[0-9a-f]{16}$", description="the rendition's id, as the POST answered it")
EXAMPLES = [
    {"kind": "speed", "factor": 2.0},
    {"kind": "audio", "format": "mp3"},
    {"kind": "frames", "fps": 1.0, "format": "jpeg"},
    {"kind": "loop", "times": 3},
    {"kind": "trim", "start_s": 1.0, "end_s": 4.0},
    {"kind": "subtitles", "format": "vtt"},
]


class RenditionView(BaseModel):
    """One derived rendition of a film version and where it stands."""

    id: str = Field(description="the rendition's id", examples=["3f9a0c1e7b2d4a68"])
    version: int = Field(description="the film version it is made from", examples=[1])
    rendition: dict[str, Any] = Field(description="what it is (kind and parameters)", examples=[EXAMPLES[0]])
    status: Literal["pending", "ready", "failed"] = Field(description="pending until the encoder has made it")
    url: str | None = Field(None, description="presigned URL of the file (REELFORGE_LINK_TTL_S), once ready")
    size_bytes: int | None = Field(None, description="its size, once ready")
    error: str | None = Field(None, description="why it could not be made")
    status_url: str = Field(description="where to ask again")


def _film_version(record: JobRecord, version: int) -> None:
    if version not in record.films:
        raise ApiError(409, "film_not_ready", f"job {record.job_id} has no finished film version {version}", status=record.status)


def _view(deps: GatewayDeps, job_id: str, version: int, rid: str, asked: dict[str, Any]) -> RenditionView:
    store, bucket = deps.store, deps.work_bucket
    record_key = Keys.derived_meta(job_id, version, rid)
    made = store.get_json(bucket, record_key) if store.exists(bucket, record_key) else None
    status: Literal["pending", "ready", "failed"] = "pending" if made is None else "failed" if "error" in made else "ready"
    return RenditionView(
        id=rid,
        version=version,
        rendition=asked,
        status=status,
        url=deps.links.url(bucket, made["key"]) if status == "ready" and made else None,
        size_bytes=made.get("size_bytes") if made else None,
        error=made.get("error") if made else None,
        status_url=f"/v1/jobs/{job_id}/films/{version}/renditions/{rid}",
    )


def _refusal(deps: GatewayDeps, job_id: str, version: int, spec: Any) -> tuple[str, str] | None:
    """What the film itself cannot give (the field and why), read from the encoder's film record."""
    film = deps.store.get_json(deps.work_bucket, Keys.film_meta(job_id, version))
    if isinstance(spec, TrimRendition) and not spec.start_s < spec.end_s <= film["duration_s"] + 1e-6:
        return "end_s", f"{spec.start_s}..{spec.end_s} s is not inside the film's 0..{film['duration_s']:.3f} s"
    if isinstance(spec, AudioRendition) and not film.get("has_audio"):
        return "kind", "the film has no sound to extract"
    return None


def _ask(deps: GatewayDeps, job_id: str, version: int, rid: str, spec: Any) -> bool:
    """Record the request (once); True while the rendition is not made yet (the request goes out, again if need be:
    the bus drops a repeat inside its duplicate window, and the encoder makes a rendition once)."""
    key = Keys.derived_request(job_id, version, rid)
    if not deps.store.exists(deps.work_bucket, key):
        deps.store.put_json(deps.work_bucket, key, spec.model_dump())
    return not deps.store.exists(deps.work_bucket, Keys.derived_meta(job_id, version, rid))


@router.post(
    "/v1/jobs/{job_id}/films/{version}/renditions",
    status_code=202,
    response_model=RenditionView,
    responses=responses(404, 409, 422) | {200: {"model": RenditionView, "description": "asked before: where it stands"}},
)
async def ask_rendition(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    version: Annotated[int, VERSION],
    spec: Annotated[RenditionSpec, Body(examples=EXAMPLES)],
) -> JSONResponse:
    """Derive a rendition of a film version: ``speed`` (0.25-4x, pitch kept), ``audio`` (mp3, aac, wav), ``frames``
    (stills at an fps, a zip), ``loop`` (1-100 times, stream copy), ``trim`` (start_s..end_s), ``subtitles`` (srt, vtt,
    soft track, burnt in). 202 while it is made, 200 once it is made (the same kind and parameters: the same rendition)."""
    record = await owned_job(request, deps, job_id)
    _film_version(record, version)
    if refused := await asyncio.to_thread(_refusal, deps, job_id, version, spec):
        field, why = refused
        raise ApiError(422, "invalid_request", f"{field}: {why}", fields=[{"field": field, "message": why}])
    rid = rendition_id(spec)
    if await asyncio.to_thread(_ask, deps, job_id, version, rid, spec):
        await deps.bus.publish(RenditionRequested(job_id=job_id, version=version, rendition_id=rid, rendition=spec))
        code = 202
    else:
        code = 200
    view = await asyncio.to_thread(_view, deps, job_id, version, rid, spec.model_dump())
    return JSONResponse(view.model_dump(mode="json"), status_code=code)


@router.get("/v1/jobs/{job_id}/films/{version}/renditions/{rendition_id}", response_model=RenditionView, responses=responses(404))
async def get_rendition(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    version: Annotated[int, VERSION],
    rendition_id: Annotated[RenditionId, RID],
) -> RenditionView:
    """A derived rendition: pending, failed (with why), or ready with a short-lived URL."""
    await owned_job(request, deps, job_id)

    def read() -> RenditionView | None:
        key = Keys.derived_request(job_id, version, rendition_id)
        if not deps.store.exists(deps.work_bucket, key):
            return None
        return _view(deps, job_id, version, rendition_id, deps.store.get_json(deps.work_bucket, key))

    if (view := await asyncio.to_thread(read)) is None:
        raise ApiError(404, "rendition_not_found", f"no rendition {rendition_id} of job {job_id} version {version}")
    return view


@router.get("/v1/jobs/{job_id}/films/{version}/renditions", response_model=list[RenditionView], responses=responses(404))
async def list_renditions(
    request: Request, deps: Deps, job_id: Annotated[str, JOB_ID], version: Annotated[int, VERSION]
) -> list[RenditionView]:
    """Every derived rendition asked of a film version, and where each stands."""
    await owned_job(request, deps, job_id)
    suffix = ".request.json"

    def read() -> list[RenditionView]:
        prefix = Keys.derived(job_id, version, "", "")
        asked = [k for k in deps.store.list_keys(deps.work_bucket, prefix) if k.endswith(suffix)]
        return [
            _view(deps, job_id, version, key[len(prefix) : -len(suffix)], deps.store.get_json(deps.work_bucket, key))
            for key in asked
        ]

    return await asyncio.to_thread(read)
