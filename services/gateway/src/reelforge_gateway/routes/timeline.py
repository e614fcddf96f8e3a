"""Hand-off to an editor: a finished film's timeline (OpenTimelineIO, FCPXML, FCP7 XML, EDL, Kdenlive) and its bundle.

Both are built from what the job stores (:mod:`reelforge_gateway.timeline.sources`) and read the job through
:func:`reelforge_gateway.views.owned_job`, like every job route: another token's job is a 404.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from reelforge_gateway.auth import caller_of
from reelforge_gateway.deps import Deps, GatewayDeps
from reelforge_gateway.errors import ApiError
from reelforge_gateway.routes.jobs import JOB_ID, responses
from reelforge_gateway.routes.takes import put_take
from reelforge_gateway.timeline.bundle import timeline_name, write_bundle
from reelforge_gateway.timeline.export import FORMATS, Format, write
from reelforge_gateway.timeline.reimport import ImportRefused, plan_import
from reelforge_gateway.timeline.sources import Sourced, from_store
from reelforge_gateway.views import JobView, job_view, owned_job
from reelforge_shared.events import CutEntry
from reelforge_shared.jobs import JobRecord, RerenderRefused, rerender_segment
from reelforge_shared.jobs.transitions import recut
from reelforge_shared.storage import Keys

router = APIRouter(tags=["timeline"])
VERSION = Query(ge=1, le=10_000, description="film version (default: the latest finished)")


def _version(record: JobRecord, version: int | None) -> int:
    """The film version asked for, or the latest finished one; 409 while there is none."""
    chosen = version or max(record.films, default=0)
    if chosen not in record.films:
        which = f" version {version}" if version else ""
        raise ApiError(409, "film_not_ready", f"job {record.job_id} has no finished film{which} yet", status=record.status)
    return chosen


async def _sourced(deps: GatewayDeps, record: JobRecord, version: int | None) -> Sourced:
    return await asyncio.to_thread(from_store, deps.store, deps.work_bucket, record.job_id, _version(record, version))


def _filename(record: JobRecord, suffix: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{record.job_id}-{suffix}"'}


@router.get(
    "/v1/jobs/{job_id}/timeline",
    responses=responses(404, 409) | {200: {"description": "the timeline as a file in the format asked for"}},
)
async def timeline(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    format: Annotated[
        Format, Query(description="otio, fcpxml (Final Cut Pro), fcp7xml (Premiere, Resolve), edl, kdenlive")
    ] = "otio",
    media: Annotated[
        Literal["relative", "urls"],
        Query(description="relative: media/NNN-ID.mp4 as in the bundle; urls: presigned URLs valid for REELFORGE_LINK_TTL_S"),
    ] = "relative",
    version: Annotated[int | None, VERSION] = None,
) -> Response:
    """The film as an editor's timeline: shots with their transitions, sound, alternates (earlier attempts, other
    takes) on disabled tracks, QA findings as markers, each clip's prompt, seed, model and QA scores in its metadata."""
    record = await owned_job(request, deps, job_id)
    sourced = await _sourced(deps, record, version)
    urls = None
    if media == "urls":
        urls = {name: deps.links.url(deps.work_bucket, key) for name, key in sourced.keys.items()}
    text = await asyncio.to_thread(write, sourced.cut, format, media_urls=urls)
    return Response(text, media_type=FORMATS[format][2], headers=_filename(record, timeline_name(format)))


@router.get(
    "/v1/jobs/{job_id}/bundle",
    responses=responses(404, 409) | {200: {"description": "a zip: every timeline format, the media, the film, a README"}},
)
async def bundle(
    request: Request, deps: Deps, job_id: Annotated[str, JOB_ID], version: Annotated[int | None, VERSION] = None
) -> FileResponse:
    """The hand-off bundle: the timeline in every format, the segment files it references (relative paths), the film
    and a README saying what is where."""
    record = await owned_job(request, deps, job_id)
    sourced = await _sourced(deps, record, version)
    work = tempfile.TemporaryDirectory(prefix="reelforge-bundle-")
    root = FilePath(work.name)

    def fetch(name: str, dest: FilePath) -> FilePath:
        return deps.store.get_file(deps.work_bucket, sourced.keys[name], dest)

    zipped = await asyncio.to_thread(write_bundle, sourced.cut, fetch, root / "bundle.zip", root)
    return FileResponse(
        zipped,
        media_type="application/zip",
        headers=_filename(record, f"v{sourced.cut.version}-bundle.zip"),
        background=BackgroundTask(work.cleanup),
    )


async def _recut(deps: GatewayDeps, record: JobRecord, entries: list[CutEntry], *, by: str | None) -> JobRecord:
    """The film's next version cut as ``entries`` say (``transitions.recut``): 409 when the job moved meanwhile."""
    job_id = record.job_id
    indices = sorted({e.index for e in entries})
    moved, why = await deps.ledger.update(job_id, lambda r: recut(r, entries, by=by), segments=indices)
    if why is not None:
        raise ApiError(409, "cut_not_possible", why, job_id=job_id)
    return moved or record


class AttemptLinks(BaseModel):
    attempt: int
    url: str


class SegmentLinks(BaseModel):
    video: str | None = Field(None, description="the current attempt's MP4")
    thumbnail: str | None = Field(None, description="its still (JPEG)")
    attempts: list[AttemptLinks] = Field(
        default_factory=list, description="earlier attempts (re-renders kept beside it), newest first"
    )


class MediaLinks(BaseModel):
    """Presigned URLs (an hour) of everything a person watches or downloads: what the review page plays."""

    films: dict[int, str] = Field(description="film version -> URL")
    deliverables: dict[str, str] = Field(description="crops and thumbnail of the latest film -> URL")
    segments: dict[int, SegmentLinks]


@router.get("/v1/jobs/{job_id}/media", response_model=MediaLinks, responses=responses(404))
async def media(request: Request, deps: Deps, job_id: Annotated[str, JOB_ID]) -> MediaLinks:
    """Short-lived URLs of the job's films (every version), deliverables, and each segment's video, still and earlier attempts."""
    record = await owned_job(request, deps, job_id)
    return await asyncio.to_thread(_media_links, deps, record)


def _media_links(deps: GatewayDeps, record: JobRecord) -> MediaLinks:
    store, work = deps.store, deps.work_bucket
    delivery = record.delivery_bucket or deps.delivery_bucket

    def url(bucket: str, key: str | None) -> str | None:
        return deps.links.url(bucket, key) if key and store.exists(bucket, key) else None

    films = {v: u for v, key in sorted(record.films.items()) if (u := url(delivery, key))}
    deliverables = {name: u for name, key in record.deliverables.items() if (u := url(delivery, key))}
    segments = {}
    for n, seg in sorted(record.segments.items()):
        attempts = [
            AttemptLinks(attempt=a, url=u)
            for a in range(seg.attempt - 1, 0, -1)
            if (u := url(work, Keys.segment_video(record.job_id, n, a)))
        ]
        key = seg.video_key if seg.stage in ("encoded", "checked", "delivered") else None
        segments[n] = SegmentLinks(
            video=url(work, key), thumbnail=url(work, Keys.segment_thumbnail(key) if key else None), attempts=attempts
        )
    return MediaLinks(films=films, deliverables=deliverables, segments=segments)


@router.post(
    "/v1/jobs/{job_id}/timeline",
    status_code=202,
    response_model=JobView,
    responses=responses(404, 409, 422),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def import_timeline(request: Request, deps: Deps, job_id: Annotated[str, JOB_ID]) -> JobView:
    """An edited OpenTimelineIO timeline (as exported, ``format=otio``) back into the job: a clip whose metadata
    ``reelforge.prompt`` or ``reelforge.seed`` changed becomes a re-render of that shot, a clip replaced by another take
    of its shot (from a disabled alternate track) that take's selection, and any other cut (clips trimmed within their
    media, reordered, removed, an earlier attempt or another take lifted onto the film track) a film version assembled
    from the stored media with nothing rendered; a new film version follows. What cannot be done (media from outside
    the job, an unknown clip, a source range beyond a clip's media, a shot twice) is a 422 naming the clip."""
    record = await owned_job(request, deps, job_id)
    if record.status != "completed":
        raise ApiError(409, "job_not_finished", f"job {job_id} is {record.status}; a timeline is re-imported once it is finished")
    import opentimelineio as otio

    try:
        edited = otio.adapters.read_from_string((await request.body()).decode(), adapter_name="otio_json")
    except (UnicodeDecodeError, ValueError, otio.exceptions.OTIOError) as exc:
        raise ApiError(422, "invalid_timeline", f"not an OpenTimelineIO timeline: {exc}"[:500]) from None
    if not isinstance(edited, otio.schema.Timeline):
        raise ApiError(422, "invalid_timeline", f"expected a Timeline, got {type(edited).__name__}")
    sourced = await _sourced(deps, record, None)
    try:
        plan = plan_import(sourced.cut, edited, sourced.keys)
    except ImportRefused as exc:
        raise ApiError(422, "timeline_refused", str(exc), clip=exc.clip) from None
    if plan.recut:  # a new cut: a film version assembled from the stored media, nothing rendered
        record = await _recut(deps, record, list(plan.recut), by=caller_of(request))
    for swap in plan.swaps:  # at most one (plan_import): a film version joined by copy, nothing rendered
        record = await put_take(deps, record, swap.index, swap.take, by=caller_of(request))
    statuses = frozenset({"completed"})
    for change in plan.rerenders:
        try:
            record = await rerender_segment(
                deps.ledger,
                deps.bus,
                deps.store,
                deps.work_bucket,
                job_id,
                change.index,
                seed=change.seed,
                prompt=change.prompt,
                by=caller_of(request),
                statuses=statuses,
            )
        except RerenderRefused as exc:
            raise ApiError(409, exc.code, str(exc), job_id=job_id, index=change.index) from None
        statuses = frozenset({"completed", "running"})  # the first moved the job on: the others join its new version
    return job_view(record, await deps.ledger.eta_sample())
