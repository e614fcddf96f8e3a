"""The one shape of every error the gateway returns, defined once for every endpoint.

It is the shape the `/api/video/*` API uses, so the jobs API and the video endpoints answer alike::

    {"error": "invalid_storyboard", "message": "...", "details": {...}, "timestamp": "2026-11-28T01:00:00Z"}

``error`` is a stable machine-readable code, ``message`` a sentence for people, ``details`` what the
code needs (``fields``: the failing fields with their messages; ``requested_model`` and
``fallback_model`` for ``model_not_found``; ...). Raise :class:`ApiError` from an endpoint, or
return :func:`error_response`; :func:`install_error_handlers` turns FastAPI's own errors
(validation, unknown route, method not allowed) and any unexpected exception into the same shape.
``ERROR_RESPONSES`` documents it in the OpenAPI document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelforge_shared.storyboard import StoryboardInvalid

log = structlog.get_logger("reelforge.gateway")


class ErrorBody(BaseModel):
    """Every error response of the gateway."""

    error: str = Field(description="stable machine-readable code", examples=["invalid_storyboard"])
    message: str = Field(description="what went wrong, for people", examples=["segments[0].prompt: Field required"])
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="what the code needs: `fields` lists failing fields",
        examples=[{"fields": [{"field": "segments[0].prompt", "message": "Field required (got None)"}]}],
    )
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC), examples=["2026-11-28T01:00:00Z"])


class ApiError(Exception):
    """Raise from an endpoint: answered with :class:`ErrorBody` and the status."""

    def __init__(self, status: int, error: str, message: str, /, headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.details, self.headers = status, error, message, details, headers


def error_response(
    status: int, error: str, message: str, /, headers: dict[str, str] | None = None, **details: Any
) -> JSONResponse:
    body = ErrorBody(error=error, message=message, details=details)
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"), headers=headers)


def field_errors(errors: list[dict[str, str]]) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) + (" ..." if len(errors) > 5 else "")


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.message, exc.headers, **exc.details)

    @app.exception_handler(StoryboardInvalid)
    async def _invalid(_: Request, exc: StoryboardInvalid) -> JSONResponse:
        return error_response(422, "invalid_storyboard", field_errors(exc.errors), fields=exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": ".".join(str(p) for p in err["loc"]), "message": str(err["msg"])} for err in exc.errors()]
        return error_response(422, "invalid_request", field_errors(fields), fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("gateway.unexpected_error", error=repr(exc))
        return error_response(500, "internal_error", "unexpected error; see the gateway log")


def _response(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _response("missing or wrong bearer token (`unauthorized`)"),
    422: _response("invalid request; `details.fields` names each failing field"),
    429: _response("rate limit (`rate_limited`, with Retry-After) or too many jobs in flight (`queue_full`)"),
}
