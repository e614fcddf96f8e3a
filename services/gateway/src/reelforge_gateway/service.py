"""The gateway as a service: the job-state tracker on the bus, and the HTTP API beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
from nats.js.kv import KeyValue

from reelforge_gateway import assets_api
from reelforge_gateway.app import GatewayDeps, create_app
from reelforge_gateway.config import GatewaySettings
from reelforge_gateway.state import TRACKED_EVENTS, apply_event
from reelforge_shared.assets import open_registry
from reelforge_shared.bus import Bus
from reelforge_shared.events import Event
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, open_store

Settings = GatewaySettings
JOBS_KV = "jobs"


@dataclass(slots=True)
class TrackerDeps:
    kv: KeyValue | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once the bucket is open


async def track(event: Event, deps: TrackerDeps) -> list[Event]:
    """Fold the event into its job's state document."""
    await deps.ready.wait()
    await apply_event(deps.kv, event)
    return []


def build(settings: GatewaySettings) -> Service:
    store = open_store(settings)
    tracker = TrackerDeps()
    service = Service("gateway", settings, [Route(e, track) for e in TRACKED_EVENTS], tracker)
    service.companions.append(lambda bus, stop: serve_http(service, bus, store, tracker, stop))
    return service


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a process that owns its signals: stop through ``should_exit``, never re-raise SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(service: Service, bus: Bus, store: object, tracker: TrackerDeps, stop: asyncio.Event) -> None:
    settings: GatewaySettings = service.settings
    tracker.kv = await bus.key_value(JOBS_KV)
    tracker.ready.set()
    deps = GatewayDeps(bus, store, tracker.kv, settings.work_bucket, settings.max_body_bytes, service.health)
    app = create_app(deps)
    database = settings.assets_database_url.get_secret_value() if settings.assets_database_url else None
    assets_api.install(app, await asyncio.to_thread(open_registry, database, store, settings.work_bucket))
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", lifespan="off")
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
