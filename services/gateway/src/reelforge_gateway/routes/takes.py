"""Takes API: put another take of a segment into the film (:mod:`reelforge_shared.takes`).

``GET /v1/jobs/{id}`` lists every take of a segment with several (seed, scores, why it won or lost);
``POST /v1/jobs/{id}/segments/{n}/takes/{k}/select`` makes the film's next version with take ``k`` of
segment ``n``, rendering nothing: the job store records the take and asks the uploader to deliver it in
place of the delivered one (``segment.take_selected``); that delivery's ``segment.delivered`` makes the
ledger request the film, ``film.requested`` names the take, and the encoder joins the film again from
the segments' stored pieces.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request

from reelforge_gateway.auth import caller_of
from reelforge_gateway.deps import Deps, GatewayDeps
from reelforge_gateway.errors import ApiError
from reelforge_gateway.routes.jobs import JOB_ID, NEW_VERSION, SegmentNumber
from reelforge_gateway.views import JobView, job_view, owned_job
from reelforge_shared.jobs import JobRecord
from reelforge_shared.jobs.transitions import select_take, take_refusal
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import parse_storyboard
from reelforge_shared.takes import MAX_TAKES

router = APIRouter(tags=["jobs"])


@router.post("/v1/jobs/{job_id}/segments/{index}/takes/{take}/select", **NEW_VERSION)
async def select(
    request: Request,
    deps: Deps,
    job_id: Annotated[str, JOB_ID],
    index: SegmentNumber,
    take: Annotated[int, Path(ge=0, lt=MAX_TAKES, description="take number (0: the segment's own seed and prompt)")],
) -> JobView:
    """Put take ``take`` of segment ``index`` into the film: the film's next version, nothing rendered.

    The job must be completed and the take rendered and checked (409 otherwise). Selecting the take
    already in the film changes nothing. The take is delivered in place of the segment's delivered one
    (its copy in the delivery bucket, a `segment.delivered` naming the film version, the job's assets),
    then the film is joined again.
    """
    record = await owned_job(request, deps, job_id)
    board = parse_storyboard(await asyncio.to_thread(deps.store.get_json, deps.work_bucket, Keys.storyboard(job_id)))
    if index > len(board.segments):
        message = f"job {job_id} has segments 1 to {len(board.segments)}, not {index}"
        raise ApiError(422, "invalid_request", message, fields=[{"field": "index", "message": message}])
    if take >= (count := board.takes_of(board.segments[index - 1])):
        message = f"segment {index} has takes 0 to {count - 1}, not {take}"
        raise ApiError(422, "invalid_request", message, fields=[{"field": "take", "message": message}])
    record = await put_take(deps, record, index, take, by=caller_of(request))
    return job_view(record, await deps.ledger.eta_sample())


async def put_take(deps: GatewayDeps, record: JobRecord, index: int, take: int, *, by: str | None) -> JobRecord:
    """Take ``take`` of segment ``index`` into the film's next version (also a re-imported timeline's take swap)."""
    job_id = record.job_id
    if why := take_refusal(record, index, take):  # the ledger checks again when it moves the job
        raise ApiError(409, "take_not_selectable", why, job_id=job_id, index=index, take=take)
    moved, why = await deps.ledger.update(job_id, lambda r: select_take(r, index, take, by=by), segments=[index])
    if why is not None:  # another request moved the job meanwhile
        raise ApiError(409, "take_not_selectable", why, job_id=job_id, index=index, take=take)
    return moved or record
