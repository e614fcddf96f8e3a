"""``GET /v1/assets?job=...``: the rows of seed 000's media_assets table that the uploader wrote for a job."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field

from reelforge_shared.assets import AssetRegistry, MediaAsset

router = APIRouter(tags=["assets"])


class AssetList(BaseModel):
    job: str = Field(description="the job asked for", examples=["j-5f1c2e7a9b"])
    assets: list[MediaAsset] = Field(description="one row per delivered object, oldest first (empty: nothing delivered yet)")


def _registry(request: Request) -> AssetRegistry:
    return request.app.state.assets


@router.get("/v1/assets", response_model=AssetList)
async def list_assets(
    registry: Annotated[AssetRegistry, Depends(_registry)],
    job: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="job id")],
) -> AssetList:
    """Every object delivered for the job: provider (s3 or gitlab), public URL (HEAD-checked), size, metadata."""
    return AssetList(job=job, assets=await asyncio.to_thread(registry.for_job, job))


def install(app: FastAPI, registry: AssetRegistry) -> None:
    app.state.assets = registry
    app.include_router(router)
