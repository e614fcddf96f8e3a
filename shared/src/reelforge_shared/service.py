"""A service = its routes + its dependencies + its readiness; this module runs any set of them.

Each service package has ``service.py`` with ``build(settings) -> Service``. ``reelforge worker
NAME`` runs one against configured servers; ``reelforge run``/``up`` run all five in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from reelforge_shared.bus import Bus
from reelforge_shared.errors import DependencyDown
from reelforge_shared.health import Health
from reelforge_shared.jobs import CancelCheck, Ledger
from reelforge_shared.logging import register_secrets
from reelforge_shared.runner import Route, Runner, backoff, outage_of
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import ObjectStore

log = structlog.get_logger("reelforge.service")


@dataclass
class Service:
    name: str
    settings: CommonSettings
    routes: list[Route]
    deps: Any
    setup: Callable[[], Any] | None = None  # load-once work (a model), run in a thread before serving
    health: Health = field(init=False)
    # Extra coroutines that live as long as the service (the gateway's HTTP server).
    companions: list[Callable[[Bus, asyncio.Event], Any]] = field(default_factory=list)
    # Asks the job ledger whether a job was cancelled: the runner skips such jobs' events, and long work
    # (the generator's batches) can ask between steps. Bound once the bus is up.
    cancel_check: CancelCheck = field(default_factory=CancelCheck)
    ledger: Ledger | None = field(default=None, init=False)  # the job ledger, opened once the bus is up

    def __post_init__(self) -> None:
        self.health = Health(self.name)
        register_secrets(self.settings)  # its secret values never reach a log line


def open_store(settings: CommonSettings) -> ObjectStore:
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket(settings.work_bucket)
    store.ensure_bucket(settings.delivery_bucket)
    return store


async def connect_bus(service: Service, stop: asyncio.Event) -> Bus | None:
    """Connect, waiting out a NATS that is not up yet (backoff with jitter) up to the outage tolerance.

    None if ``stop`` is set first (SIGTERM while NATS is unreachable: the worker exits at once). The
    client retries a refused first connect by itself without end, so each attempt is raced against
    ``stop`` and the time left of the tolerance.
    """
    began, tries, tolerance = time.monotonic(), 0, service.settings.outage_tolerance_s
    while True:
        attempt = asyncio.ensure_future(Bus.connect(service.settings, name=f"reelforge-{service.name}", service=service.name))
        stopping = asyncio.ensure_future(stop.wait())
        while True:  # in slices, so that /healthz says "nats down" while no server answers
            left = max(0.0, tolerance - (time.monotonic() - began))
            done, _ = await asyncio.wait({attempt, stopping}, timeout=min(5.0, left), return_when=asyncio.FIRST_COMPLETED)
            if done or left <= 5.0:
                break
            if "nats" not in service.health.down:
                service.health.dependency_down("nats", "no server answered the connect yet")
                log.warning("service.nats_unreachable", service=service.name, waited_s=round(time.monotonic() - began, 1))
        stopping.cancel()
        if attempt not in done:
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            if stop.is_set():
                log.info("service.stopped_before_connect", service=service.name)
                return None
            raise DependencyDown(
                "nats",
                f"unreachable for {time.monotonic() - began:.0f} s, past REELFORGE_OUTAGE_TOLERANCE_S={tolerance:g} (connect)",
            )
        try:
            bus = attempt.result()
        except Exception as exc:
            down = outage_of(exc)
            waited = time.monotonic() - began
            if down is None or stop.is_set() or waited >= tolerance:
                raise
            service.health.dependency_down("nats", down.detail)
            log.warning("service.nats_unreachable", service=service.name, waited_s=round(waited, 1), error=down.detail)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(backoff(tries), tolerance - waited))
            if stop.is_set():
                log.info("service.stopped_before_connect", service=service.name)
                return None
            tries += 1
            continue
        service.health.dependency_up("nats")
        return bus


async def run_service(service: Service, stop: asyncio.Event) -> None:
    bus = await connect_bus(service, stop)
    if bus is None:
        return  # stopped before NATS could be reached: nothing to drain
    try:
        service.ledger = await Ledger.open(bus)
        service.cancel_check.bind(service.ledger, asyncio.get_running_loop())
        if service.setup:
            try:
                await asyncio.to_thread(service.setup)
            except Exception as exc:
                service.health.setup_failed(f"{type(exc).__name__}: {exc}")
                log.error("service.setup_failed", service=service.name, error=str(exc))
                raise
        runner = Runner(service.name, service.routes, service.deps, bus, service.settings, service.health, service.cancel_check)
        await asyncio.gather(runner.serve(stop), *(companion(bus, stop) for companion in service.companions))
    finally:
        with contextlib.suppress(Exception):
            await bus.close()


async def run_services(services: list[Service], stop: asyncio.Event) -> None:
    """Run services until ``stop``; if one fails, stop the others and raise."""
    tasks = [asyncio.create_task(run_service(s, stop), name=s.name) for s in services]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                log.error("service.crashed", service=task.get_name(), error=repr(task.exception()))
            task.result()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
