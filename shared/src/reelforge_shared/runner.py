"""The one bus loop every service runs: subscribe, decode, handle, publish, ack.

A service is a list of :class:`Route` s: an event type and a plain handler
``handle(event, deps) -> list[Event]`` that knows nothing of NATS, acks or metrics. The runner:

- pulls from a durable consumer (explicit acks) and decodes the event; a body that does not
  parse is dead-lettered at once (redelivering it cannot help);
- reports in-progress every ``ack_wait / 3`` while the handler works, so long work is not
  redelivered while it is alive; sync handlers run in a worker thread;
- publishes the returned events (each with its Nats-Msg-Id), then acks;
- on :class:`PermanentError`, or on any error at the last delivery, publishes a dead letter and
  the event's failed event and terminates the message; otherwise naks with a growing delay;
- skips (acks without work) an event of a job the ledger says is cancelled, and acks quietly a
  handler that stops because its job was cancelled (:class:`Cancelled`); observer routes (the
  ledger's) see every event, cancelled or not;
- logs one line per message and owns the metrics.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import structlog
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from reelforge_shared.bus import Bus
from reelforge_shared.errors import Cancelled, PermanentError
from reelforge_shared.events import DeadLetter, Event, lost_envelope
from reelforge_shared.health import Health
from reelforge_shared.settings import CommonSettings

Handler = Callable[[Any, Any], "list[Event] | Awaitable[list[Event]]"]

EVENTS_HANDLED = Counter(
    "reelforge_events_handled_total", "Events handled, by outcome", ["service", "event", "outcome"]
)
HANDLE_SECONDS = Histogram(
    "reelforge_event_handle_seconds",
    "Time to handle one event",
    ["service", "event"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
DEAD_LETTERS = Counter("reelforge_dead_letters_total", "Events dead-lettered", ["service", "event"])

log = structlog.get_logger("reelforge.runner")


@dataclass(frozen=True, slots=True)
class Route:
    event: type[Event]
    handle: Handler
    concurrency: int = 1
    prefetch: int = 1  # messages taken from the consumer together
    group_by: Callable[[Any], str] | None = None  # handle a prefetched batch grouped by this key (first-seen order)
    # Delays before each redelivery (the consumer's backoff list, and the nak delays); its length + 1 is the
    # route's max deliveries. None: ``retry_delay_s`` doubling, ``max_deliver`` deliveries (settings).
    backoff: tuple[float, ...] | None = None
    observer: bool = False  # records what happened (the ledger); runs for cancelled jobs too, does no job work


@dataclass(slots=True)
class Runner:
    service: str
    routes: list[Route]
    deps: Any
    bus: Bus
    settings: CommonSettings
    health: Health
    cancel_check: Any = None  # reelforge_shared.ledger.CancelCheck; None: no job is ever skipped

    async def serve(self, stop: asyncio.Event) -> None:
        """Run every route until ``stop`` is set; in-flight messages finish first."""
        loops = []
        for route in self.routes:
            durable = f"{self.service}-{route.event.subject.replace('.', '-')}"
            sub = await self.bus.pull(
                route.event, durable,
                ack_wait_s=self._ack_wait(route), max_deliver=self._max_deliver(route), backoff=route.backoff,
            )
            loops += [self._loop(route, sub, stop) for _ in range(route.concurrency)]
        self.health.ready()
        await asyncio.gather(*loops)

    async def _loop(self, route: Route, sub: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(route.prefetch, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            # Messages waiting their turn report in-progress too, or JetStream would redeliver them meanwhile.
            waiting = {id(m): asyncio.create_task(self._keep_alive(m, route)) for m in msgs[1:]}
            for msg in _grouped(msgs, route):
                if task := waiting.pop(id(msg), None):
                    task.cancel()
                try:
                    await self.process(route, msg)
                except Exception as exc:  # a bug in one message must not stop the loop
                    log.exception("event.crashed", error=repr(exc))  # not acked: redelivered after ack_wait

    async def process(self, route: Route, msg: Any) -> None:
        name = route.event.__name__
        deliveries = msg.metadata.num_delivered
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(service=self.service, subject=msg.subject, delivery=deliveries)
        started = time.perf_counter()
        try:
            event = route.event.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._dead_letter(msg, name, deliveries, f"undecodable {name}: {exc}")
            await msg.term()
            EVENTS_HANDLED.labels(self.service, name, "invalid").inc()
            log.error("event.invalid", error=str(exc))
            return
        structlog.contextvars.bind_contextvars(job_id=event.job_id, index=getattr(event, "index", None))
        heartbeat = asyncio.create_task(self._keep_alive(msg, route))
        self.health.busy()
        try:
            outcome, error = await self._handle(route, event, msg, deliveries)
        finally:
            heartbeat.cancel()
            self.health.idle()
        seconds = time.perf_counter() - started
        HANDLE_SECONDS.labels(self.service, name).observe(seconds)
        EVENTS_HANDLED.labels(self.service, name, outcome).inc()
        emit = log.info if outcome == "ok" else log.warning
        emit("event.handled", event_type=name, outcome=outcome, seconds=round(seconds, 3), error=error)

    async def _handle(self, route: Route, event: Event, msg: Any, deliveries: int) -> tuple[str, str | None]:
        try:
            if not route.observer and self.cancel_check is not None and await self.cancel_check.cancelled(event.job_id):
                await msg.ack()
                return "cancelled", None
            if inspect.iscoroutinefunction(route.handle):
                results = await route.handle(event, self.deps)
            else:
                results = await asyncio.to_thread(route.handle, event, self.deps)
            for result in results:
                if why := lost_envelope(event, result):  # a handler bug: fail loudly, never a silent duplicate
                    raise PermanentError(why)
            for result in results:
                await self.bus.publish(result)
            await msg.ack()
            return "ok", None
        except Cancelled:
            await msg.ack()
            return "cancelled", None
        except Exception as exc:  # noqa: BLE001 - the fate of the message is decided here, for every handler
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, PermanentError) or deliveries >= self._max_deliver(route):
                await self._dead_letter(msg, type(event).__name__, deliveries, error)
                await self.bus.publish(event.failure(self.service, error))
                await msg.term()
                return "failed", error
            if route.backoff:
                delay = route.backoff[min(deliveries, len(route.backoff)) - 1]
            else:
                delay = self.settings.retry_delay_s * 2 ** (deliveries - 1)
            await msg.nak(delay=delay)
            return "retry", error

    async def _dead_letter(self, msg: Any, name: str, deliveries: int, error: str) -> None:
        DEAD_LETTERS.labels(self.service, name).inc()
        letter = DeadLetter(
            service=self.service, subject=msg.subject, deliveries=deliveries, error=error,
            payload=msg.data.decode(errors="replace"),
        )
        await self.bus.dead_letter(letter)

    def _max_deliver(self, route: Route) -> int:
        return len(route.backoff) + 1 if route.backoff else self.settings.max_deliver

    def _ack_wait(self, route: Route) -> float:
        """JetStream takes a backoff consumer's ack wait from the first delay."""
        return min(self.settings.ack_wait_s, route.backoff[0]) if route.backoff else self.settings.ack_wait_s

    async def _keep_alive(self, msg: Any, route: Route) -> None:
        while True:
            await asyncio.sleep(self._ack_wait(route) / 3)
            await msg.in_progress()


def _grouped(msgs: list[Any], route: Route) -> list[Any]:
    """Messages ordered so equal keys follow each other (a worker keeps one model loaded for a run of them).

    Groups keep the order in which their key first appeared, and messages keep their order inside a
    group; a message that does not decode sorts with the empty key and fails later, in process().
    """
    if route.group_by is None or len(msgs) < 2:
        return msgs
    keys = []
    for msg in msgs:
        try:
            keys.append(route.group_by(route.event.model_validate_json(msg.data)))
        except ValidationError:
            keys.append("")
    first = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    return [msgs[i] for i in sorted(range(len(msgs)), key=lambda i: (first[keys[i]], i))]
