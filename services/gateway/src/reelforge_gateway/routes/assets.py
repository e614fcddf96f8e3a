"""``GET /v1/assets?job=...``: the rows of the media_assets table that the uploader wrote for a job."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from reelforge_gateway.deps import Deps
from reelforge_gateway.errors import ApiError
from reelforge_gateway.views import owned_job
from reelforge_shared.assets import MediaAsset

router = APIRouter(tags=["assets"])


class AssetList(BaseModel):
    job: str = Field(description="the job asked for", examples=["j-5f1c2e7a9b"])
    assets: list[MediaAsset] = Field(description="one row per delivered object, oldest first (empty: nothing delivered yet)")


@router.get("/v1/assets", response_model=AssetList)
async def list_assets(
    request: Request,
    deps: Deps,
    job: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="job id")],
) -> AssetList:
    """Every object delivered for the job: provider (s3 or gitlab), a download URL, size, metadata.

    An S3 object's ``public_url`` is a presigned GET URL made for this answer, valid for REELFORGE_LINK_TTL_S.
    """
    if deps.assets is None:
        raise ApiError(503, "unavailable", "the asset registry is not configured on this gateway")
    await owned_job(request, deps, job)  # another owner's job: 404, as for a job that does not exist
    rows = await asyncio.to_thread(deps.assets.for_job, job)
    # The stored public URL is the uploader's; the client gets a short-lived one, signed for the endpoint it reaches.
    assets = [a.model_copy(update={"public_url": deps.links.of_storage_url(a.storage_url) or a.public_url}) for a in rows]
    return AssetList(job=job, assets=assets)
