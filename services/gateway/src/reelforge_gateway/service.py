"""The gateway as a service: the job ledger's observer on the bus, and the HTTP API beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

import structlog
import uvicorn

from reelforge_gateway.app import create_app
from reelforge_gateway.auth import Access, parse_names, parse_tokens
from reelforge_gateway.config import GatewaySettings
from reelforge_gateway.deps import GatewayDeps, VideoDefaults
from reelforge_gateway.form_stream import sweep_incoming_every
from reelforge_gateway.links import Links
from reelforge_gateway.rates import SharedWindow
from reelforge_gateway.routes.renditions import forget_renditions, rendition_objects
from reelforge_gateway.streams import SharedStreams
from reelforge_gateway.submit import Republisher
from reelforge_shared.assets import open_registry
from reelforge_shared.bus import Bus
from reelforge_shared.events import Event, RenditionEncoded, SegmentRerenderRequested
from reelforge_shared.flow import routes
from reelforge_shared.jobs import JobRecord, RerenderRefused, plan_rerender
from reelforge_shared.references import reference_egress
from reelforge_shared.service import Service, open_store
from reelforge_shared.storage import ObjectStore

Settings = GatewaySettings
log = structlog.get_logger("reelforge.gateway")


def build(settings: GatewaySettings) -> Service:
    """The gateway: the ledger's observer, re-render commands, and the HTTP API (refuses to run open by accident)."""
    tokens = parse_tokens(settings.api_tokens.get_secret_value() if settings.api_tokens else None)
    if settings.api_auth == "on" and not tokens:
        raise ValueError("REELFORGE_API_TOKENS is not set: give the API's tokens (name:token,...) or set REELFORGE_API_AUTH=off")
    if unknown := parse_names(settings.api_admins) - set(tokens.values()):
        raise ValueError(f"REELFORGE_API_ADMINS names no token of REELFORGE_API_TOKENS: {', '.join(sorted(unknown))}")
    store = open_store(settings)
    service = Service("gateway", settings, [], None)

    async def observe(event: Event, _deps: object) -> list[Event]:
        """The job ledger's observer: fold the event into the record (the last delivery asks for the film)."""
        assert service.ledger is not None  # noqa: S101 - opened before any route runs
        record, publish = await service.ledger.apply(event)
        if isinstance(event, RenditionEncoded) and event.rendition_id not in record.renditions.get(event.version, {}):
            # deleted while the encoder made it (or its job swept): its file has no record to find it by
            for key in rendition_objects(store, settings.work_bucket, event.job_id, event.version, event.rendition_id):
                await asyncio.to_thread(store.remove, settings.work_bucket, key)
        return publish

    async def rerender(event: SegmentRerenderRequested, _deps: object) -> list[Event]:
        """A service asked for a segment again (continuity QA): the same path as the API's re-render."""
        assert service.ledger is not None  # noqa: S101 - opened before any route runs
        try:
            _, request = await plan_rerender(
                service.ledger,
                store,
                settings.work_bucket,
                event.job_id,
                event.index,
                seed=event.seed,
                prompt=event.prompt,
                by=event.reason or event.subject,
                references=tuple(event.reference_images),
            )
        except RerenderRefused as exc:  # the job goes on as it was: refusing a request does not fail it
            log.warning("gateway.rerender_refused", job_id=event.job_id, index=event.index, reason=exc.code, error=str(exc))
            return []
        return [request] if request is not None else []  # None: it waits for the segment before it (reelforge_shared.chain)

    service.routes.extend(routes("gateway", {"observe": observe, "rerender": rerender}))
    service.companions.append(lambda bus, stop: serve_http(service, bus, store, stop))
    service.companions.append(lambda bus, stop: sweep_incoming_every(store, settings.work_bucket, 600.0, stop))
    service.companions.append(
        lambda bus, stop: watch_jobs(
            service,
            settings.lag_poll_s,
            stop,
            Republisher(bus=bus, store=store, bucket=settings.work_bucket, reuse=settings.shot_reuse),
            lambda record: asyncio.to_thread(forget_renditions, store, settings.work_bucket, record),
        )
    )
    return service


async def watch_jobs(
    service: Service,
    every_s: float,
    stop: asyncio.Event,
    republish: Republisher | None = None,
    forget: Callable[[JobRecord], Awaitable[None]] | None = None,
) -> None:
    """The ledger's upkeep every ``every_s`` (jobs of stores from before moved into the indexes, once; unpublished
    events published (``republish``: what submissions and resumes owe), jobs past their deadline cancelled,
    finished jobs past REELFORGE_JOB_RETENTION deleted, ``forget``: their derived renditions with them), then jobs
    by state and the stalled-job age for /metrics."""
    while not stop.is_set():
        if service.ledger is not None:  # the upkeep first: after an upgrade it moves old jobs into the indexes read here
            try:
                retention = getattr(service.settings, "job_retention", None)
                await service.ledger.upkeep(retention, republish=republish, forget=forget)
            except Exception as exc:  # noqa: BLE001 - the next round tries again; it must never stop the gateway
                log.warning("jobs.upkeep_deferred", error=repr(exc))
            try:
                await service.ledger.export_metrics()
            except Exception as exc:  # noqa: BLE001 - a metric must never stop the gateway; the gauges keep their last value
                log.warning("jobs.metrics_unread", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a process that owns its signals: stop through ``should_exit``, never re-raise SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(service: Service, bus: Bus, store: ObjectStore, stop: asyncio.Event) -> None:
    settings = service.settings
    if not isinstance(settings, GatewaySettings):
        raise TypeError(f"the gateway needs GatewaySettings, got {type(settings).__name__}")
    assert service.ledger is not None  # noqa: S101 - run_service opens it before companions start
    tokens = parse_tokens(settings.api_tokens.get_secret_value() if settings.api_tokens else None)
    access = Access(
        tokens=tokens,
        enabled=settings.api_auth == "on",
        window=SharedWindow(kv=service.ledger.kv, per_minute=settings.rate_limit_per_min),
        admins=parse_names(settings.api_admins),
    )
    database = settings.assets_database_url.get_secret_value() if settings.assets_database_url else None
    deps = GatewayDeps(
        bus=bus,
        store=store,
        ledger=service.ledger,
        health=service.health,
        links=Links.from_settings(settings, public_endpoint=settings.s3_public_endpoint, ttl_s=settings.link_ttl_s),
        work_bucket=settings.work_bucket,
        delivery_bucket=settings.delivery_bucket,
        access=access,
        assets=await asyncio.to_thread(open_registry, database, store, settings.work_bucket),
        video=VideoDefaults(
            text_to_video_model=settings.default_text_to_video_model,
            image_to_video_model=settings.default_image_to_video_model,
            max_duration_s=settings.max_video_duration,
            sync_timeout_s=settings.sync_timeout_s,
            allow_test_model=settings.allow_test_model,
        ),
        limits=settings.storyboard_limits(),
        reference_limits=(references := settings.reference_limits()),
        egress=reference_egress(
            allow_private=settings.webhook_allow_private, deadline_s=settings.reference_timeout_s, limits=references
        ),
        max_body_bytes=settings.max_body_bytes,
        max_yaml_bytes=settings.max_yaml_bytes,
        parse_timeout_s=settings.parse_timeout_s,
        max_upload_bytes=settings.max_upload_bytes,
        max_image_pixels=settings.max_image_pixels,
        max_jobs_in_flight=settings.max_jobs_in_flight,
        streams=SharedStreams(kv=service.ledger.kv, limit=settings.max_event_streams, lease_s=settings.event_stream_lease_s),
        sse_heartbeat_s=settings.sse_heartbeat_s,
        webhook_allow_private=settings.webhook_allow_private,
        default_model=settings.model,
        ops_endpoints=settings.ops_endpoints,
        shot_reuse=settings.shot_reuse,
    )
    app = create_app(deps)
    # log_config=None: uvicorn's own handlers would bypass redaction; its loggers go through the root handler instead
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", lifespan="off", log_config=None)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
    if deps.egress is not None:
        await deps.egress.aclose()  # the reference fetches' client, once no request can use it
