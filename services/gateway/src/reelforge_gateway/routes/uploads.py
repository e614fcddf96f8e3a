"""``POST /v1/uploads``: media a storyboard may name, uploaded once, checked, owned.

The body streams through the guard (cut at ``REELFORGE_MAX_UPLOAD_BYTES``) into a spooled file; the
medium is checked as its part's type says (an image: PNG, JPEG or WebP within
``REELFORGE_MAX_IMAGE_PIXELS``, every pixel decoded; audio: WAV, MP3, FLAC, Ogg or M4A, decoded to
the end) before it is stored under the caller's own folder (``uploads/{owner}/{sha256}.ext``). The key
it answers with is what a storyboard names (``characters.*.reference_image``, ``deliverables.logo``,
``audio.music``, ``segments[].audio``); at submission the upload is copied under the job, and another
owner's key is refused like a missing one.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import BaseModel, Field

from reelforge_gateway.auth import caller_of
from reelforge_gateway.deps import Deps
from reelforge_gateway.errors import ERROR_RESPONSES, ApiError, ErrorBody
from reelforge_shared.errors import InvalidInput
from reelforge_shared.references import EXTENSIONS, Kind, check_reference
from reelforge_shared.storage import Keys

router = APIRouter(tags=["uploads"])


class Upload(BaseModel):
    key: str = Field(description="what a storyboard names (yours only)", examples=["uploads/alice/5f1c2e7a9b0d4e21.png"])
    content_type: str = Field(description="the checked type, not the one the client claimed", examples=["image/png"])
    size: int = Field(description="bytes")
    sha256: str


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
)
async def upload(
    request: Request,
    deps: Deps,
    file: Annotated[UploadFile, File(description="an image (PNG, JPEG, WebP) or audio (WAV, MP3, FLAC, Ogg, M4A)")],
) -> Upload:
    """Store an image or a sound for storyboards to name; answered with its key."""
    data = await file.read()  # at most REELFORGE_MAX_UPLOAD_BYTES: the guard cut the body as it streamed
    kind: Kind = "audio" if (file.content_type or "").startswith("audio/") else "image"
    try:
        checked = await check_reference(data, kind=kind, field="file", limits=deps.reference_limits)
    except InvalidInput as exc:
        raise ApiError(422, "invalid_upload", str(exc), fields=[{"field": "file", "message": str(exc)}]) from None
    digest = hashlib.sha256(data).hexdigest()
    key = Keys.upload(caller_of(request), digest[:32] + EXTENSIONS.get(checked.content_type, ""))
    await asyncio.to_thread(deps.store.put_bytes, deps.work_bucket, key, data, checked.content_type)
    return Upload(key=key, content_type=checked.content_type, size=len(data), sha256=digest)
