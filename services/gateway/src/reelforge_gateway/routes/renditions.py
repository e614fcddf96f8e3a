"""Derived renditions of a film version: the editing utilities (speed, audio, stills, loop, trim, subtitles) on the API.

``POST /v1/jobs/{id}/films/{version}/renditions`` asks for one (the encoder makes it from the stored film,
``reelforge_encoder.derived``); the same kind and parameters are the same rendition (its id is their hash), made
once. Each is recorded in the job store (``JobRecord.renditions``: kind, parameters, status, object, size, when), which
``rendition.encoded``/``rendition.failed`` bring up to date: ``GET .../renditions/{rendition_id}`` and ``GET
.../renditions`` read that record (and ``GET /v1/jobs/{id}`` shows it), ``DELETE .../renditions/{rendition_id}`` removes
the record and the object, and the job store's retention sweep deletes them with the job (:func:`forget_renditions`).
Every route reads the job through :func:`owned_job`: another token's job is a 404.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from reelforge_gateway.deps import Deps, GatewayDeps
from reelforge_gateway.errors import ApiError
from reelforge_gateway.routes.jobs import JOB_ID, responses
from reelforge_gateway.views import owned_job
from reelforge_shared.events import (
    AudioRendition,
    RenditionId,
    RenditionRequested,
    RenditionSpec,
    TrimRendition,
    rendition_id,
)
from reelforge_shared.jobs import JobRecord, RenditionRecord
from reelforge_shared.jobs.transitions import ask_rendition, forget_rendition
from reelforge_shared.storage import Keys, ObjectStore

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
    created_at: Any = Field(description="when it was asked for")
    status_url: str = Field(description="where to ask again (and DELETE it)")


def _film_version(record: JobRecord, version: int) -> None:
    if version not in record.films:
        raise ApiError(409, "film_not_ready", f"job {record.job_id} has no finished film version {version}", status=record.status)


def _view(deps: GatewayDeps, job_id: str, version: int, asked: RenditionRecord) -> RenditionView:
    """What the job store records of a rendition, with a short-lived URL once it is made."""
    ready = asked.status == "ready" and asked.key is not None
    return RenditionView(
        id=asked.id,
        version=version,
        rendition={"kind": asked.kind, **asked.params},
        status=asked.status,
        url=deps.links.url(deps.work_bucket, asked.key) if ready and asked.key else None,
        size_bytes=asked.size_bytes,
        error=asked.error,
        created_at=asked.created_at,
        status_url=f"/v1/jobs/{job_id}/films/{version}/renditions/{asked.id}",
    )


def _recorded(record: JobRecord, version: int, rid: str) -> RenditionRecord:
    if (asked := record.renditions.get(version, {}).get(rid)) is None:
        raise ApiError(404, "rendition_not_found", f"no rendition {rid} of job {record.job_id} version {version}")
    return asked


def _refusal(deps: GatewayDeps, job_id: str, version: int, spec: Any) -> tuple[str, str] | None:
    """What the film itself cannot give (the field and why), read from the encoder's film record."""
    film = deps.store.get_json(deps.work_bucket, Keys.film_meta(job_id, version))
    if isinstance(spec, TrimRendition) and not spec.start_s < spec.end_s <= film["duration_s"] + 1e-6:
        return "end_s", f"{spec.start_s}..{spec.end_s} s is not inside the film's 0..{film['duration_s']:.3f} s"
    if isinstance(spec, AudioRendition) and not film.get("has_audio"):
        return "kind", "the film has no sound to extract"
    return None


def _made(deps: GatewayDeps, job_id: str, version: int, rid: str) -> dict[str, Any] | None:
    """The encoder's record of a rendition stored already (made before the job store recorded it), else None."""
    key = Keys.derived_meta(job_id, version, rid)
    return deps.store.get_json(deps.work_bucket, key) if deps.store.exists(deps.work_bucket, key) else None


def rendition_objects(store: ObjectStore, bucket: str, job_id: str, version: int, rid: str = "") -> list[str]:
    """A rendition's objects (its file, the encoder's record, a request of before the job store kept them); every
    rendition's of the version without ``rid``."""
    prefix = Keys.derived(job_id, version, rid, ".") if rid else Keys.derived(job_id, version, "", "")
    return store.list_keys(bucket, prefix)


def forget_renditions(store: ObjectStore, bucket: str, record: JobRecord) -> None:
    """Delete every derived rendition of every film version of a job (the retention sweep, before the record goes)."""
    versions = set(record.films) | set(record.renditions) | set(range(1, record.film_version + 1))
    for version in sorted(versions):
        for key in rendition_objects(store, bucket, record.job_id, version):
            store.remove(bucket, key)


@router.post(
    "/v1/jobs/{job_id}/films/{version}/renditions",
    status_code=202,
    response_model=RenditionView,
    responses=responses(404, 409, 422) | {200: {"model": RenditionView, "description": "asked before: where it stands"}},
)
async def ask_rendition_route(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    version: Annotated[int, VERSION],
    spec: Annotated[RenditionSpec, Body(examples=EXAMPLES)],
) -> JSONResponse:
    """Derive a rendition of a film version: ``speed`` (0.25-4x, pitch kept), ``audio`` (mp3, aac, wav), ``frames``
    (stills at an fps, a zip), ``loop`` (1-100 times, stream copy), ``trim`` (start_s..end_s), ``subtitles`` (srt, vtt,
    soft track, burnt in). 202 while it is made, 200 once it is made (the same kind and parameters: the same rendition).
    A job keeps at most 64 renditions at once (422 ``renditions``: delete one first)."""
    record = await owned_job(request, deps, job_id)
    _film_version(record, version)
    if refused := await asyncio.to_thread(_refusal, deps, job_id, version, spec):
        field, why = refused
        raise ApiError(422, "invalid_request", f"{field}: {why}", fields=[{"field": field, "message": why}])
    rid, asked = rendition_id(spec), spec.model_dump()
    made = await asyncio.to_thread(_made, deps, job_id, version, rid)
    updated, full = await deps.ledger.update(job_id, lambda r: ask_rendition(r, version, rid, asked, made))
    if full:
        raise ApiError(422, "invalid_request", f"renditions: {full}", fields=[{"field": "renditions", "message": full}])
    if updated is None:  # swept meanwhile
        raise ApiError(404, "job_not_found", f"no job {job_id!r}", job_id=job_id)
    recorded = _recorded(updated, version, rid)
    if recorded.status == "pending":  # the request goes out, again if need be: the bus drops a repeat of this request
        event = RenditionRequested(job_id=job_id, version=version, rendition_id=rid, rendition=spec, request=recorded.request)
        await deps.bus.publish(event)
    view = _view(deps, job_id, version, recorded)
    return JSONResponse(view.model_dump(mode="json"), status_code=202 if recorded.status == "pending" else 200)


@router.get("/v1/jobs/{job_id}/films/{version}/renditions/{rendition_id}", response_model=RenditionView, responses=responses(404))
async def get_rendition(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    version: Annotated[int, VERSION],
    rendition_id: Annotated[RenditionId, RID],
) -> RenditionView:
    """A derived rendition: pending, failed (with why), or ready with a short-lived URL."""
    record = await owned_job(request, deps, job_id)
    return _view(deps, job_id, version, _recorded(record, version, rendition_id))


@router.delete(
    "/v1/jobs/{job_id}/films/{version}/renditions/{rendition_id}",
    status_code=204,
    response_class=Response,
    responses=responses(404),
)
async def delete_rendition(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    version: Annotated[int, VERSION],
    rendition_id: Annotated[RenditionId, RID],
) -> Response:
    """Delete a derived rendition: its record, then its file (asked again later, it is made again)."""
    record = await owned_job(request, deps, job_id)
    _recorded(record, version, rendition_id)
    _, gone = await deps.ledger.update(job_id, lambda r: forget_rendition(r, version, rendition_id))
    if gone is None:  # deleted by another request meanwhile
        raise ApiError(404, "rendition_not_found", f"no rendition {rendition_id} of job {job_id} version {version}")

    def remove() -> None:
        for key in rendition_objects(deps.store, deps.work_bucket, job_id, version, rendition_id):
            deps.store.remove(deps.work_bucket, key)

    await asyncio.to_thread(remove)
    return Response(status_code=204)


@router.get("/v1/jobs/{job_id}/films/{version}/renditions", response_model=list[RenditionView], responses=responses(404))
async def list_renditions(
    request: Request, deps: Deps, job_id: Annotated[str, JOB_ID], version: Annotated[int, VERSION]
) -> list[RenditionView]:
    """Every derived rendition of a film version the job store records, oldest first, and where each stands."""
    record = await owned_job(request, deps, job_id)
    asked = sorted(record.renditions.get(version, {}).values(), key=lambda r: r.request)
    return [_view(deps, job_id, version, r) for r in asked]
