"""``GET /v1/assets?job=...``: the rows of the media_assets table that the uploader wrote for a job."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from reelforge_gateway.deps import Deps
from reelforge_gateway.errors import ApiError
from reelforge_shared.assets import MediaAsset

router = APIRouter(tags=["assets"])


class AssetList(BaseModel):
    job: str = Field(description="the job asked for", examples=["j-5f1c2e7a9b"])
    assets: list[MediaAsset] = Field(description="one row per delivered object, oldest first (empty: nothing delivered yet)")


@router.get("/v1/assets", response_model=AssetList)
async def list_assets(
    deps: Deps,
    job: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="job id")],
) -> AssetList:
    """Every object delivered for the job: provider (s3 or gitlab), public URL (HEAD-checked), size, metadata."""
    if deps.assets is None:
        raise ApiError(503, "unavailable", "the asset registry is not configured on this gateway")
    return AssetList(job=job, assets=await asyncio.to_thread(deps.assets.for_job, job))
