"""The gateway's FastAPI application: routes, middleware, error handlers and /metrics, put together.

``/v1`` and ``/api`` need a bearer token and are rate limited per token (:mod:`reelforge_gateway.auth`);
``/healthz`` and ``/metrics`` are open. Every error has one shape (:mod:`reelforge_gateway.errors`).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app

from reelforge_gateway.deps import Deps, GatewayDeps
from reelforge_gateway.errors import install_error_handlers
from reelforge_gateway.middleware import BodyLimits, Guard, RequestLog
from reelforge_gateway.routes import assets, jobs, renditions, review, takes, timeline, uploads, video


def create_app(deps: GatewayDeps) -> FastAPI:
    app = FastAPI(
        title="Reelforge gateway",
        version="1",
        description="Jobs API v1: a storyboard in, a checked film out. Bearer tokens on /v1 and /api; errors share one shape.",
    )
    app.state.deps = deps
    if deps.ops_endpoints != "internal":  # internal: /metrics only on REELFORGE_METRICS_PORT, which stays in the cluster
        app.mount("/metrics", make_asgi_app())
    install_error_handlers(app)
    # Added last, runs first: the log sees every answer, the guard's refusals included.
    limits = BodyLimits(body_bytes=deps.max_body_bytes, upload_bytes=deps.max_upload_bytes)
    app.add_middleware(Guard, access=deps.access, limits=limits, ops_need_token=deps.ops_endpoints != "public")
    app.add_middleware(RequestLog)
    app.include_router(jobs.router)
    app.include_router(takes.router)
    app.include_router(video.router)
    app.include_router(assets.router)
    app.include_router(uploads.router)
    app.include_router(timeline.router)
    app.include_router(renditions.router)
    app.include_router(review.router)

    @app.get("/healthz", include_in_schema=True)
    async def healthz(deps: Deps) -> JSONResponse:
        return JSONResponse(status_code=200 if deps.health.ok else 503, content=deps.health.as_dict())

    return app
