"""``POST /v1/uploads``: media a storyboard may name, uploaded once, checked, owned.

The file streams to storage as it comes (:mod:`reelforge_gateway.form_stream`: counted against
``REELFORGE_MAX_UPLOAD_BYTES``, an image's type and pixel count read from its header before anything is
stored, never held whole in memory); the medium is checked as its part's type says (an image: PNG, JPEG or WebP within
``REELFORGE_MAX_IMAGE_PIXELS``, every pixel decoded; audio: WAV, MP3, FLAC, Ogg or M4A, decoded to
the end) before it is stored under the caller's own folder (``uploads/{owner}/{sha256}.ext``). The key
it answers with is what a storyboard names (``characters.*.reference_image``, ``deliverables.logo``,
``audio.music``, ``segments[].audio``); at submission the upload is copied under the job, and another
owner's key is refused like a missing one.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from reelforge_gateway.auth import caller_of
from reelforge_gateway.deps import Deps
from reelforge_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody
from reelforge_gateway.form_stream import FileField, StagedFile, check_staged, read_form
from reelforge_shared.errors import InvalidInput
from reelforge_shared.references import EXTENSIONS
from reelforge_shared.storage import Keys

router = APIRouter(tags=["uploads"])


class Upload(BaseModel):
    key: str = Field(description="what a storyboard names (yours only)", examples=["uploads/alice/5f1c2e7a9b0d4e21.png"])
    content_type: str = Field(description="the checked type, not the one the client claimed", examples=["image/png"])
    size: int = Field(description="bytes")
    sha256: str


_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "an image (PNG, JPEG, WebP) or audio (WAV, MP3, FLAC, Ogg, M4A: its part's Content-Type audio/*)",
        }
    },
}


@router.post(
    "/v1/uploads",
    status_code=201,
    response_model=Upload,
    responses={
        401: ERROR_RESPONSES[401],
        413: {"model": ErrorBody, "description": "body larger than REELFORGE_MAX_UPLOAD_BYTES (`too_large`)"},
        422: {"model": ErrorBody, "description": "not an image or audio that decodes within the limits (`invalid_upload`)"},
        429: ERROR_RESPONSES[429],
    },
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM}}}},
)
async def upload(request: Request, deps: Deps) -> Upload:
    """Store an image or a sound for storyboards to name; answered with its key."""
    limits = deps.reference_limits
    file = FileField(name="file", audio=True, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, error="invalid_upload")
    staged: StagedFile | None = None
    try:
        _, staged = await read_form(request, store=deps.store, bucket=deps.work_bucket, file=file)
        if staged is None:
            raise ApiError(422, "invalid_upload", "file: Field required", fields=[{"field": "file", "message": "Field required"}])
        try:
            content_type = await asyncio.to_thread(check_staged, deps.store, deps.work_bucket, staged, "file", limits)
        except InvalidInput as exc:
            raise ApiError(422, "invalid_upload", str(exc), fields=[{"field": "file", "message": str(exc)}]) from None
        key = Keys.upload(caller_of(request), staged.sha256[:32] + EXTENSIONS.get(content_type, ""))
        await asyncio.to_thread(deps.store.copy, deps.work_bucket, staged.key, deps.work_bucket, key, content_type)
        return Upload(key=key, content_type=content_type, size=staged.size, sha256=staged.sha256)
    finally:
        if staged is not None:  # copied to its key by now, or refused: the staged object goes either way
            await asyncio.shield(asyncio.to_thread(deps.store.remove, deps.work_bucket, staged.key))
