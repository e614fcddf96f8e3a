"""The jobs API: submit a storyboard, read a job's state; /healthz and /metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app

from reelforge_gateway.submit import new_job_id, submit_job
from reelforge_shared.bus import Bus
from reelforge_shared.health import Health
from reelforge_shared.ledger import JobRecord, Ledger
from reelforge_shared.storage import ObjectStore
from reelforge_shared.storyboard import StoryboardInvalid, load_storyboard


@dataclass(slots=True)
class GatewayDeps:
    bus: Bus
    store: ObjectStore
    ledger: Ledger
    work_bucket: str
    max_body_bytes: int
    health: Health


def get_deps(request: Request) -> GatewayDeps:
    return request.app.state.deps


Deps = Annotated[GatewayDeps, Depends(get_deps)]


def create_app(deps: GatewayDeps) -> FastAPI:
    app = FastAPI(title="Reelforge gateway", version="1")
    app.state.deps = deps
    app.mount("/metrics", make_asgi_app())

    @app.exception_handler(StoryboardInvalid)
    async def _invalid(_: Request, exc: StoryboardInvalid) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": "invalid storyboard", "detail": exc.errors})

    @app.post("/v1/jobs", status_code=202)
    async def create_job(
        request: Request, deps: Deps, idempotency_key: Annotated[str | None, Header(max_length=200)] = None
    ) -> dict:
        """Submit a storyboard (JSON or YAML body); 422 names the failing field and nothing is published."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > deps.max_body_bytes:
                return JSONResponse(
                    status_code=413,
                    content={
                        "error": "storyboard too large",
                        "detail": [{"field": "body", "message": f"more than {deps.max_body_bytes} bytes"}],
                    },
                )
        board = load_storyboard(body)
        job_id = new_job_id(idempotency_key)
        submitted = await submit_job(board, bus=deps.bus, store=deps.store, bucket=deps.work_bucket, job_id=job_id)
        return {
            "job_id": submitted.job_id, "segments": submitted.segment_count, "duration_s": submitted.duration_s,
            "status_url": f"/v1/jobs/{submitted.job_id}",
        }

    @app.get("/v1/jobs/{job_id}", response_model=JobRecord)
    async def get_job(job_id: str, deps: Deps) -> JobRecord | JSONResponse:
        """Per-segment status of a job."""
        status = await deps.ledger.get(job_id) if _valid_key(job_id) else None
        if status is None:
            detail = [{"field": "job_id", "message": f"no job {job_id!r}"}]
            return JSONResponse(status_code=404, content={"error": "unknown job", "detail": detail})
        return status

    @app.get("/healthz")
    async def healthz(deps: Deps) -> JSONResponse:
        return JSONResponse(status_code=200 if deps.health.ok else 503, content=deps.health.as_dict())

    return app


def _valid_key(job_id: str) -> bool:
    return 0 < len(job_id) <= 64 and all(c.isalnum() or c in "-_" for c in job_id)
