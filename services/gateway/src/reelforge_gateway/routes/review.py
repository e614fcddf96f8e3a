"""The review page (``/review/{job_id}``): static HTML, CSS and a small script, no build step.

The page holds no data: it asks the public API for everything (``/v1/jobs/{id}``, its events, media,
re-render, timeline, bundle) with the token the person enters, kept in the tab's session storage and sent in
the Authorization header, never in a URL. So the page itself is open, like ``/healthz``; what it shows is
guarded by the API's own auth and ownership.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response

from reelforge_gateway.errors import ApiError
from reelforge_gateway.routes.jobs import JOB_ID

router = APIRouter(tags=["review"])
PAGE = files("reelforge_gateway") / "review"
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
# Scripts and styles from this origin only; media from anywhere (the films are presigned S3 URLs).
POLICY = "default-src 'self'; img-src 'self' data: blob: http: https:; media-src 'self' blob: http: https:; object-src 'none'"


@router.get("/review/{job_id}", response_class=HTMLResponse, include_in_schema=False)
async def review_page(job_id: Annotated[str, JOB_ID]) -> HTMLResponse:
    return HTMLResponse(
        (PAGE / "review.html").read_text(), headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-store"}
    )


@router.get("/review/static/{name}", include_in_schema=False)
async def review_static(name: Annotated[str, Path(max_length=32)]) -> Response:
    if name not in STATIC:
        raise ApiError(404, "not_found", f"no file {name!r}")
    return Response((PAGE / name).read_text(), media_type=STATIC[name])
