"""A service = its routes + its dependencies + its readiness; this module runs any set of them.

Each service package has ``service.py`` with ``build(settings) -> Service``. ``reelforge worker
NAME`` runs one against configured servers; ``reelforge run``/``up`` run all five in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from reelforge_shared.bus import Bus
from reelforge_shared.errors import DependencyDown, PermanentError, StartupFailed
from reelforge_shared.health import Health
from reelforge_shared.jobs import CancelCheck, Ledger
from reelforge_shared.logging import register_secrets
from reelforge_shared.runner import Route, Runner, WorkerRetired, backoff, outage_of
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
    # What the service holds open (HTTP clients), closed once it has stopped serving.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Asks the job ledger whether a job was cancelled: the runner skips such jobs' events, and long work
    # (the generator's batches) can ask between steps. Bound once the bus is up.
    cancel_check: CancelCheck = field(default_factory=CancelCheck)
    ledger: Ledger | None = field(default=None, init=False)  # the job ledger, opened once the bus is up

    def __post_init__(self) -> None:
        self.health = Health(self.name)
        register_secrets(self.settings)  # its secret values never reach a log line


def open_store(settings: CommonSettings) -> ObjectStore:
    """The S3 client of a service; nothing is asked of the server here (start-up waits for it: :func:`wait_for_s3`)."""
    return ObjectStore.from_settings(settings)


# The settings a start-up failure of each dependency points at.
SETTINGS_OF = {
    "s3": "REELFORGE_S3_ENDPOINT (and the service's S3 keys)",
    "nats": "REELFORGE_NATS_URL (and REELFORGE_NATS_USER/PASSWORD, TLS)",
}


def past_tolerance(dependency: str, waited: float, tolerance: float, detail: str) -> StartupFailed:
    """The one line a worker ends with when a dependency is still away at start-up past the tolerance."""
    return StartupFailed(
        f"{dependency} unreachable for {waited:.0f} s at start-up, past REELFORGE_OUTAGE_TOLERANCE_S={tolerance:g}: "
        f"{detail}; check {SETTINGS_OF.get(dependency, dependency)} or raise REELFORGE_OUTAGE_TOLERANCE_S"
    )


async def wait_for_s3(service: Service, stop: asyncio.Event) -> bool:
    """Until the S3 server answers and the buckets are there, like an outage at run time; False if stopped first.

    /healthz names ``s3`` while it is away; past ``outage_tolerance_s`` a :class:`StartupFailed` says which
    settings to look at. A bucket this identity may neither see nor make is a failure at once (no wait helps).
    """
    store = ObjectStore.from_settings(service.settings)
    buckets = (service.settings.work_bucket, service.settings.delivery_bucket)
    began, tries, tolerance = time.monotonic(), 0, service.settings.outage_tolerance_s
    while True:
        try:
            for bucket in buckets:
                await asyncio.to_thread(store.ensure_bucket, bucket)
        except DependencyDown as exc:
            waited = time.monotonic() - began
            if waited >= tolerance:
                raise past_tolerance("s3", waited, tolerance, exc.detail) from None
            if "s3" not in service.health.down:
                log.warning("service.s3_unreachable", service=service.name, error=exc.detail)
            service.health.dependency_down("s3", exc.detail)
            await _first_of(stop, min(backoff(tries), tolerance - waited))
            if stop.is_set():
                return False
            tries += 1
            continue
        except PermanentError as exc:
            raise StartupFailed(f"{exc}; check REELFORGE_WORK_BUCKET/REELFORGE_DELIVERY_BUCKET and the S3 keys") from None
        if "s3" in service.health.down:
            service.health.dependency_up("s3")
            log.info("dependency.up", dependency="s3")
        return True


async def _first_of(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


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
            raise past_tolerance("nats", time.monotonic() - began, tolerance, "no server answered the connect")
        try:
            bus = attempt.result()
        except Exception as exc:
            down = outage_of(exc)
            waited = time.monotonic() - began
            if down is not None and waited >= tolerance and not stop.is_set():
                raise past_tolerance("nats", waited, tolerance, down.detail) from None
            if down is None or stop.is_set():
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
    """Wait for S3 and NATS (within the outage tolerance), load the service's setup, then serve until ``stop``."""
    if not await wait_for_s3(service, stop):
        return  # stopped before S3 could be reached
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
                if isinstance(exc, StartupFailed):
                    raise
                if isinstance(exc, PermanentError):  # a refused or missing model: its message names the setting
                    raise StartupFailed(f"{service.name} setup failed: {exc}") from None
                log.error("service.setup_failed", service=service.name, error=str(exc))
                raise
        runner = Runner(service.name, service.routes, service.deps, bus, service.settings, service.health, service.cancel_check)
        await asyncio.gather(runner.serve(stop), *(companion(bus, stop) for companion in service.companions))
        if runner.retired is not None:
            raise WorkerRetired(f"{service.name} retired: {runner.retired}")
    finally:
        for close in service.closers:
            try:
                await close()
            except Exception as exc:  # noqa: BLE001 - one that fails must not keep the others open
                log.warning("service.close_failed", service=service.name, error=repr(exc))
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
