"""The one bus loop every service runs: subscribe, decode, handle, publish, ack.

A service is a list of :class:`Route` s: an event type and a plain handler
``handle(event, deps) -> list[Event]`` that knows nothing of NATS, acks or metrics. The runner:

- pulls from a durable consumer (explicit acks) and decodes the event; a body that does not
  parse is dead-lettered at once (redelivering it cannot help);
- a dead letter names the stream sequence, subject, headers and error with a base64 preview of
  the body (never the body: it fits any max_payload the message did); a refused dead-letter
  publish is retried and logged, and if it never lands the message is kept (nak), not dropped;
  the dead-letter counter counts letters that landed;
- reports in-progress every ``ack_wait / 3`` while the handler works, so long work is not
  redelivered while it is alive; sync handlers run in a worker thread;
- publishes the returned events (each with its Nats-Msg-Id), then acks;
- on :class:`PermanentError`, or on any error at the last delivery, publishes a dead letter and
  the event's failed event and terminates the message; otherwise naks with a growing delay;
- skips (acks without work) an event of a job the ledger says is cancelled, and acks quietly a
  handler that stops because its job was cancelled (:class:`Cancelled`); observer routes (the
  ledger's) see every event, cancelled or not;
- an unreachable S3 or NATS (:class:`DependencyDown`, connection errors) is a condition of the
  worker, not a failure of the event: every loop stops fetching, the work is retried in place with
  capped exponential backoff and jitter (the delivery is not spent, the heartbeat keeps the
  message), ``/healthz`` lists the dependency as down; past ``outage_tolerance_s`` the event fails
  with an error naming the outage;
- a handler past its time limit (``Route.timeout``, else ``work_timeout_s``) is abandoned: its
  heartbeat stops, what can be stopped is (an async handler is cancelled, the subprocesses a sync
  one started through :func:`reelforge_shared.work.run_subprocess` are killed), the message is
  nak'ed for another delivery (dead-lettered after the last one), and the loop takes the next
  message; a handler thread that still has not returned ``abandon_grace_s`` later is wedged: the
  worker turns not ready (RETIRING), stops pulling, and only then hands the message back, drains,
  and exits (:class:`WorkerRetired`, exit 3) for its supervisor to start a fresh one;
- on stop (SIGTERM) loops stop fetching; in-flight work has ``drain_s`` to finish, then it is
  handed back (nak without delay), as are prefetched messages still waiting their turn;
- an observer route (``Route.observer``: job state, metrics) never publishes a failed event: after
  its last delivery its message is dead-lettered for that route alone;
- logs one line per message and owns the metrics.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import inspect
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import nats.errors
import nats.js.errors
import structlog
from pydantic import ValidationError

from reelforge_shared.bus import Bus
from reelforge_shared.envelope import lost_envelope
from reelforge_shared.errors import Cancelled, DependencyDown, PermanentError
from reelforge_shared.events import DeadLetter, Event
from reelforge_shared.flow import durable_name
from reelforge_shared.health import Health
from reelforge_shared.metrics import (
    ABANDONED,
    CONSUMER_ACK_PENDING,
    CONSUMER_LAG,
    CONSUMER_PENDING,
    DEAD_LETTERS,
    EVENTS_HANDLED,
    HANDLE_SECONDS,
    OUTAGE_SECONDS,
    STAGE_SECONDS,
)
from reelforge_shared.settings import CommonSettings
from reelforge_shared.work import _CURRENT as _CURRENT_WORK
from reelforge_shared.work import Work, working

Handler = Callable[[Any, Any], "list[Event] | Awaitable[list[Event]]"]

# What a NATS client raises while no server answers (a restart, a leader election, a partition).
NATS_DOWN: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    ConnectionError,
)
BACKOFF_FIRST_S, BACKOFF_CAP_S = 0.5, 15.0
DEAD_LETTER_TRIES = 5  # a refused dead-letter publish (not an outage: those are waited out) is tried this often
PREVIEW_BYTES, ERROR_CHARS, HEADERS_KEPT, HEADER_CHARS = 512, 2000, 32, 256  # a dead letter stays small

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
    timeout: Callable[[Any], float] | None = None  # time limit for one event; None: settings.work_timeout_s
    # Only records what happened (the ledger, metrics): runs for cancelled jobs too, does no job work, and its
    # failure never fails the segment (dead-lettered for this route alone).
    observer: bool = False
    after_cancel: bool = False  # runs for cancelled jobs too (observers always do): notifications such as webhooks


def outage_of(exc: BaseException) -> DependencyDown | None:
    """The unreachable dependency behind ``exc``, if that is what it is."""
    if isinstance(exc, DependencyDown):
        return exc
    if isinstance(exc, NATS_DOWN):
        return DependencyDown("nats", f"{type(exc).__name__}: {exc}".rstrip(": "))
    return None


def dead_letter_of(service: str, msg: Any, deliveries: int, error: str) -> DeadLetter:
    """The dead letter of a JetStream message: where it is in the stream and why, with a bounded preview of it."""
    headers = list((msg.headers or {}).items())[:HEADERS_KEPT]
    try:
        sequence = msg.metadata.sequence.stream
    except Exception:  # noqa: BLE001 - not a JetStream message (no reply subject): no sequence to name
        sequence = None
    return DeadLetter(
        service=service,
        subject=msg.subject,
        stream_sequence=sequence,
        deliveries=deliveries,
        error=error[:ERROR_CHARS],
        headers={str(k)[:HEADER_CHARS]: str(v)[:HEADER_CHARS] for k, v in headers},
        size=len(msg.data),
        preview=base64.b64encode(msg.data[:PREVIEW_BYTES]).decode(),
    )


def backoff(attempt: int) -> float:
    """Capped exponential backoff with full jitter: uniform in [0, min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2**attempt)]."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** min(attempt, 30)))  # noqa: S311 - jitter, not crypto


class Abandoned(Exception):
    """The handler did not finish in time (``reason`` "timeout"), nor its thread after that ("wedged"), or before
    the drain deadline ("drain")."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class WorkerRetired(Exception):
    """The worker stopped because a handler thread is wedged: it exits for its supervisor to start a fresh one."""


@dataclass(slots=True)
class Runner:
    service: str
    routes: list[Route]
    deps: Any
    bus: Bus
    settings: CommonSettings
    health: Health
    cancel_check: Any = None  # reelforge_shared.jobs.CancelCheck; None: no job is ever skipped
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _drain_deadline: float | None = None
    _clear: asyncio.Event = field(default_factory=asyncio.Event)  # set while no handler waits out an outage: loops fetch then
    _outages: int = 0  # handlers waiting out an outage now
    retired: str | None = None  # why the worker retires (a wedged handler thread); run_service raises WorkerRetired

    async def serve(self, stop: asyncio.Event) -> None:
        """Run every route until ``stop`` is set; in-flight work gets ``drain_s`` to finish, then is handed back."""
        self._stop = stop
        self._clear.set()
        loops = []
        for route in self.routes:
            durable = durable_name(self.service, route.event)
            sub = await self._outlast(
                partial(
                    self.bus.pull,
                    route.event,
                    durable,
                    ack_wait_s=self._ack_wait(route),
                    max_deliver=self._max_deliver(route),
                    backoff=route.backoff,
                ),
                "subscribe",
            )
            loops += [self._loop(route, sub, stop) for _ in range(route.concurrency)]
            loops.append(self._watch_lag(route, durable, stop))
            # Counters start at 0 for every outcome, so increase() sees the first failure and dashboards show a zero.
            for outcome in ("ok", "retry", "failed", "invalid"):
                EVENTS_HANDLED.labels(self.service, route.event.__name__, outcome)
            DEAD_LETTERS.labels(self.service, route.event.__name__)
        self.health.ready()
        drain = asyncio.create_task(self._on_stop(stop))
        try:
            await asyncio.gather(*loops)
        finally:
            drain.cancel()

    async def _on_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._drain_deadline = asyncio.get_running_loop().time() + self.settings.drain_s
        log.info("runner.draining", service=self.service, drain_s=self.settings.drain_s)

    async def _watch_lag(self, route: Route, durable: str, stop: asyncio.Event) -> None:
        """Export the durable consumer's queue lag, read from JetStream, every ``lag_poll_s``."""
        labels = (self.bus.stream, durable, self.service, route.event.__name__)
        while not stop.is_set():
            try:
                info = await self.bus.js.consumer_info(self.bus.stream, durable)
            except Exception as exc:  # noqa: BLE001 - a metric must never stop the worker; the gauges keep their last value
                log.warning("consumer.lag_unread", durable=durable, error=repr(exc))
            else:
                CONSUMER_PENDING.labels(*labels).set(info.num_pending or 0)
                CONSUMER_ACK_PENDING.labels(*labels).set(info.num_ack_pending or 0)
                CONSUMER_LAG.labels(*labels).set((info.num_pending or 0) + (info.num_ack_pending or 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.lag_poll_s)

    async def _loop(self, route: Route, sub: Any, stop: asyncio.Event) -> None:
        fetch_tries = 0  # the fetch is its own probe of NATS: it backs off, never waits for another loop
        while not stop.is_set():
            if not self._clear.is_set():  # a handler waits out an outage: taking messages now would only hold them
                await _first(self._clear.wait(), stop.wait())
                continue
            try:
                msgs = await sub.fetch(route.prefetch, timeout=self.settings.fetch_wait_s)
            except (nats.errors.TimeoutError, TimeoutError):
                self._dependency_up("nats")
                continue
            except Exception as exc:
                if (down := outage_of(exc)) is None:
                    log.exception("runner.fetch_failed", error=repr(exc))
                    await _first(asyncio.sleep(1), stop.wait())
                    continue
                await self._wait_out(down, fetch_tries, time.monotonic(), "fetch")
                fetch_tries += 1
                continue
            fetch_tries = 0
            self._dependency_up("nats")
            # Messages waiting their turn report in-progress too, or JetStream would redeliver them meanwhile.
            waiting = {id(m): asyncio.create_task(self._keep_alive(m, route)) for m in msgs[1:]}
            for msg in _grouped(msgs, route):
                if task := waiting.pop(id(msg), None):
                    task.cancel()
                if stop.is_set():  # draining: what has not started goes back at once
                    await _quietly(msg.nak())
                    continue
                try:
                    await self.process(route, msg)
                except Exception as exc:
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
            why = f"undecodable {name}: {exc}"
            EVENTS_HANDLED.labels(self.service, name, "invalid").inc()
            log.error("event.invalid", error=why[:ERROR_CHARS], size=len(msg.data))
            if await self._outlast(lambda: self._dead_letter(msg, name, deliveries, why), "dead-letter"):
                await _quietly(msg.term())
            else:  # kept: redelivered after a delay, and dead-lettered then
                await _quietly(msg.nak(delay=self.settings.retry_delay_s))
            return
        structlog.contextvars.bind_contextvars(job_id=event.job_id, index=getattr(event, "index", None))
        heartbeat = asyncio.create_task(self._keep_alive(msg, route))
        self.health.busy()
        try:
            outcome, error = await self._handle(route, event, msg, deliveries, heartbeat)
        finally:
            heartbeat.cancel()
            self.health.idle()
        seconds = time.perf_counter() - started
        HANDLE_SECONDS.labels(self.service, name).observe(seconds)
        if outcome == "ok":
            STAGE_SECONDS.labels(self.service, name).observe(max(0.0, (datetime.now(UTC) - event.occurred_at).total_seconds()))
        EVENTS_HANDLED.labels(self.service, name, outcome).inc()
        (log.info if outcome == "ok" else log.warning)(
            "event.handled", event_type=name, outcome=outcome, seconds=round(seconds, 3), error=error
        )

    async def _handle(
        self, route: Route, event: Event, msg: Any, deliveries: int, heartbeat: asyncio.Task
    ) -> tuple[str, str | None]:
        name = type(event).__name__
        try:
            skippable = not (route.observer or route.after_cancel)
            # The ledger read waits out a NATS outage (a stream leader election) like any other step of the work.
            if (
                skippable
                and self.cancel_check is not None
                and await self._outlast(partial(self.cancel_check.cancelled, event.job_id), "cancel-check")
            ):
                await self._outlast(msg.ack, "ack")
                return "cancelled", None
            results = await self._outlast(lambda: self._call(route, event), "handle")
            for result in results:
                if why := lost_envelope(event, result):  # a handler bug: fail loudly, never a silent duplicate
                    raise PermanentError(why)
            for result in results:
                await self._outlast(partial(self.bus.publish, result), "publish")
            await self._outlast(msg.ack, "ack")
            return "ok", None
        except Cancelled:
            await _quietly(msg.ack())
            return "cancelled", None
        except Abandoned as exc:
            heartbeat.cancel()  # the work is not alive any more: stop telling JetStream it is
            ABANDONED.labels(self.service, name, exc.reason).inc()
            if exc.reason == "drain" or deliveries < self._max_deliver(route):
                await _quietly(msg.nak())  # no delay: another worker (or this one) takes it now
                return ("handed-back" if exc.reason == "drain" else "abandoned"), str(exc)
            return await self._fail(route, event, msg, deliveries, str(exc))
        except Exception as exc:  # noqa: BLE001 - the fate of the message is decided here, for every handler
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, PermanentError) or deliveries >= self._max_deliver(route) or outage_of(exc):
                return await self._fail(route, event, msg, deliveries, error)
            if route.backoff:
                delay = route.backoff[min(deliveries, len(route.backoff)) - 1]
            else:
                delay = self.settings.retry_delay_s * 2 ** (deliveries - 1)
            await _quietly(msg.nak(delay=delay))
            return "retry", error

    async def _fail(self, route: Route, event: Event, msg: Any, deliveries: int, error: str) -> tuple[str, str]:
        """Dead-letter the message; a worker route also records the event's failure (an observer's stays its own)."""
        landed = await self._outlast(lambda: self._dead_letter(msg, type(event).__name__, deliveries, error), "dead-letter")
        if not route.observer:
            await self._outlast(lambda: self.bus.publish(event.failure(self.service, error)), "publish")
        if not landed:  # the message stays: redelivered after a delay, and dead-lettered then
            await _quietly(msg.nak(delay=self.settings.retry_delay_s))
            return "dead-letter-lost", error
        await _quietly(msg.term())
        return ("dead-lettered" if route.observer else "failed"), error

    async def _call(self, route: Route, event: Event) -> list[Event]:
        """Run the handler under its time limit and the drain deadline; past either it is abandoned."""
        limit = route.timeout(event) if route.timeout else self.settings.work_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        job = Work()  # what can be stopped if the call is abandoned (its subprocesses)
        threaded = not inspect.iscoroutinefunction(route.handle)
        if threaded:
            work: asyncio.Future = _in_daemon_thread(route.handle, event, self.deps, job)
        else:
            context = contextvars.copy_context()
            context.run(_CURRENT_WORK.set, job)
            work = loop.create_task(cast(Coroutine[Any, Any, list[Event]], route.handle(event, self.deps)), context=context)
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                now = loop.time()
                until, reason = deadline, "timeout"
                if self._drain_deadline is not None and self._drain_deadline < until:
                    until, reason = self._drain_deadline, "drain"
                waits = {work} if stopping.done() else {work, stopping}
                await asyncio.wait(waits, timeout=max(0.0, until - now), return_when=asyncio.FIRST_COMPLETED)
                if work.done():
                    return work.result()
                if stopping.done() and self._drain_deadline is None:
                    await asyncio.sleep(0)  # let _on_stop set the drain deadline
                    continue
                if loop.time() >= until:
                    killed = job.abandon()  # its subprocesses are killed, so its thread can return
                    if not threaded:
                        work.cancel()  # an async handler stops here
                    what = (
                        f"no result within {limit:g} s (its time limit)"
                        if reason == "timeout"
                        else (f"not finished within the {self.settings.drain_s:g} s drain; handed back")
                    )
                    if killed:
                        what += f"; {killed} subprocess(es) killed"
                    if threaded and reason == "timeout" and not await self._returns(work):
                        self._retire(f"{type(event).__name__} handler wedged: {what}, and its thread did not return")
                        raise Abandoned("wedged", f"{type(event).__name__} abandoned: {what}; the worker retires")
                    work.cancel()  # a thread's result, if it ever comes, is unused
                    raise Abandoned(reason, f"{type(event).__name__} abandoned: {what}")
        finally:
            stopping.cancel()

    async def _returns(self, thread: asyncio.Future) -> bool:
        """Whether an abandoned handler's thread returns within ``abandon_grace_s`` (its subprocesses killed)."""
        done, _ = await asyncio.wait({thread}, timeout=self.settings.abandon_grace_s)
        return bool(done)

    def _retire(self, why: str) -> None:
        """A thread that cannot be stopped holds this worker: not ready, no more pulls, drain, then exit.

        Its message is handed back (nak) only after this, so the redelivery goes to another worker, never
        beside the stuck thread (and its pipeline lock) in this one.
        """
        if self.retired is None:
            self.retired = why
            self.health.retiring(why)
            log.error("worker.wedged", service=self.service, detail=why, action="draining, then exiting for the supervisor")
        self._stop.set()

    async def _outlast(self, step: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Run ``step``, waiting out outages of S3 or NATS (backoff with jitter) up to the outage tolerance.

        Meanwhile the other loops of this worker take no new messages. Past the tolerance the
        DependencyDown is raised with the outage named. On stop the wait ends: the work is handed
        back (:class:`Abandoned`, "drain"), its message left to JetStream.
        """
        began, tries = time.monotonic(), 0
        try:
            while True:
                try:
                    result = await step()
                except Exception as exc:
                    down = outage_of(exc)
                    if down is None:
                        raise
                    if self._stop.is_set():
                        raise Abandoned("drain", f"handed back during the {down.dependency} outage: {down.detail}") from exc
                    if tries == 0:
                        self._outages += 1
                        self._clear.clear()
                    await self._wait_out(down, tries, began, what)
                    tries += 1
                    continue
                if tries:
                    for dependency in list(self.health.down):
                        self._dependency_up(dependency)
                return result
        finally:
            if tries:
                self._outages -= 1
                if self._outages == 0:
                    self._clear.set()

    async def _wait_out(self, down: DependencyDown, tries: int, began: float, what: str) -> None:
        waited = time.monotonic() - began
        if waited >= self.settings.outage_tolerance_s:
            raise DependencyDown(
                down.dependency,
                f"{down.dependency} unreachable for {waited:.0f} s, past REELFORGE_OUTAGE_TOLERANCE_S="
                f"{self.settings.outage_tolerance_s:g} ({what}): {down.detail}",
            )
        if down.dependency not in self.health.down:
            log.warning("dependency.down", dependency=down.dependency, during=what, error=down.detail)
        self.health.dependency_down(down.dependency, down.detail)
        pause = min(backoff(tries), self.settings.outage_tolerance_s - waited)
        OUTAGE_SECONDS.labels(self.service, down.dependency).inc(pause)
        await _first(asyncio.sleep(pause), self._stop.wait())

    def _dependency_up(self, dependency: str) -> None:
        if dependency in self.health.down:
            self.health.dependency_up(dependency)
            log.info("dependency.up", dependency=dependency)

    async def _dead_letter(self, msg: Any, name: str, deliveries: int, error: str) -> bool:
        """Publish the message's dead letter, retrying a refused publish; True once it landed (then counted).

        The letter is small whatever the message (a base64 preview, never the payload), so it fits any
        max_payload the message did. An outage is raised for :meth:`_outlast` to wait out; any other
        failure is retried ``DEAD_LETTER_TRIES`` times, each logged, then False with the stream sequence
        logged: the caller keeps the message (nak) instead of dropping it.
        """
        letter = dead_letter_of(self.service, msg, deliveries, error)
        for attempt in range(1, DEAD_LETTER_TRIES + 1):
            try:
                await self.bus.dead_letter(letter)
            except Exception as exc:
                if outage_of(exc):
                    raise
                log.warning("dead_letter.publish_failed", attempt=attempt, sequence=letter.stream_sequence, error=repr(exc))
                if attempt < DEAD_LETTER_TRIES:
                    await _first(asyncio.sleep(backoff(attempt)), self._stop.wait())
                continue
            DEAD_LETTERS.labels(self.service, name).inc()
            return True
        log.error(
            "dead_letter.lost",
            subject=letter.subject,
            sequence=letter.stream_sequence,
            tries=DEAD_LETTER_TRIES,
            detail="the message is kept in the stream and redelivered; it was not dropped",
        )
        return False

    def _max_deliver(self, route: Route) -> int:
        return len(route.backoff) + 1 if route.backoff else self.settings.max_deliver

    def _ack_wait(self, route: Route) -> float:
        """JetStream takes a backoff consumer's ack wait from the first delay."""
        return min(self.settings.ack_wait_s, route.backoff[0]) if route.backoff else self.settings.ack_wait_s

    async def _keep_alive(self, msg: Any, route: Route) -> None:
        while True:
            await asyncio.sleep(self._ack_wait(route) / 3)
            await _quietly(msg.in_progress())  # NATS away: try again next beat, never end the heartbeat


async def _quietly(call: Awaitable[Any]) -> None:
    """An ack/nak/in-progress that cannot reach the server is lost; JetStream redelivers after ack_wait."""
    try:
        await call
    except Exception as exc:  # noqa: BLE001 - best effort by design
        log.debug("runner.ack_lost", error=repr(exc))


async def _first(*aws: Awaitable[Any]) -> None:
    """Until the first of ``aws`` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _in_daemon_thread(fn: Callable[[Any, Any], Any], event: Event, deps: Any, job: Work) -> asyncio.Future:
    """Run a sync handler in a daemon thread (as ``job``): an abandoned one can neither block the loop nor the exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()
    context = structlog.contextvars.get_contextvars()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def run() -> None:
        structlog.contextvars.bind_contextvars(**context)
        try:
            with working(job):
                value, error = fn(event, deps), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            value, error = None, exc
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(settle, value, error)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting
                pass

    threading.Thread(target=run, name=f"handler-{type(event).__name__}", daemon=True).start()
    return future


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
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    return [msgs[i] for i in sorted(range(len(msgs)), key=lambda i: (first[keys[i]], i))]
