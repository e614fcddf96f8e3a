"""NATS JetStream: connect, ensure the stream, publish with de-duplication ids, pull consumers.

One stream per subject prefix holds every event (``{prefix}.>``), so downstream users can replay a
job's history; each service reads it through durable pull consumers with explicit acks.

``REELFORGE_NATS_URL`` may list several servers of a cluster; the client reconnects without limit
(across that list and the servers the cluster announces). The stream and the KV buckets get
``REELFORGE_STREAM_REPLICAS`` replicas; an existing stream is updated in place, never recreated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import APIError, BadRequestError, BucketNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue
from structlog import get_logger

from reelforge_shared.clients import nats_connect_options
from reelforge_shared.errors import StartupFailed
from reelforge_shared.events import DeadLetter, Event
from reelforge_shared.flow import FLOW, KV_BUCKETS, dead_letter_subject, filter_subject, kv_bucket, stream_name, subject
from reelforge_shared.settings import CommonSettings

log = get_logger("reelforge.bus")


async def _log_error(exc: Exception) -> None:
    log.warning("nats.error", error=repr(exc))


def _log_state(what: str) -> Callable[[], Awaitable[None]]:
    async def callback() -> None:
        log.warning(what) if what.endswith("disconnected") else log.info(what)

    return callback


class MissingStream(StartupFailed):
    """The stream or a KV bucket a service needs is not on the server: ``reelforge bootstrap`` makes them."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is missing on the NATS server: run `reelforge bootstrap` once with the admin identity "
            "(REELFORGE_NATS_USER=admin; the deploys run it as a one-shot job before the services)"
        )


@dataclass(slots=True)
class Bus:
    nc: Client
    js: JetStreamContext
    prefix: str
    dedup_window_s: float
    replicas: int = 1

    @classmethod
    async def connect(
        cls, settings: CommonSettings, name: str = "reelforge", service: str | None = None, *, check: bool = True
    ) -> Bus:
        """Connect with the settings' credentials and TLS; a ``service`` gets its replies on its own inbox.

        With ``check`` the stream must exist (:class:`MissingStream` otherwise): only ``reelforge bootstrap``
        makes or changes it, under the admin identity.
        """
        if not settings.nats_url:
            raise ValueError("REELFORGE_NATS_URL is not set")
        servers = [url.strip() for url in settings.nats_url.split(",") if url.strip()]
        nc = await nats.connect(
            servers,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=5,
            allow_reconnect=True,
            ping_interval=5,
            max_outstanding_pings=3,  # a dead server is noticed in ~15 s
            error_cb=_log_error,
            disconnected_cb=_log_state("nats.disconnected"),
            reconnected_cb=_log_state("nats.reconnected"),
            **nats_connect_options(settings, service),
        )
        bus = cls(nc, nc.jetstream(), settings.subject_prefix, settings.dedup_window_s, settings.stream_replicas)
        try:
            if check:
                await bus.require_stream()
        except BaseException:  # a cluster still electing its leaders: the caller tries again on a new connection
            await nc.close()
            raise
        return bus

    @property
    def stream(self) -> str:
        return stream_name(self.prefix)

    def subject(self, event: type[Event] | Event) -> str:
        return subject(self.prefix, event)

    def dead_letter_subject(self, service: str) -> str:
        return dead_letter_subject(self.prefix, service)

    async def require_stream(self) -> None:
        """The event stream must exist; a service never makes it (its NATS user may not)."""
        try:
            await self.js.stream_info(self.stream)
        except NotFoundError:
            raise MissingStream(f"stream {self.stream}") from None

    async def ensure_stream(self) -> str:
        """Make the event stream, or update it in place (bootstrap only: needs the admin identity)."""
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            duplicate_window=self.dedup_window_s,
            max_age=30 * 24 * 3600,  # a month of history for replay and audits
            num_replicas=self.replicas,
        )
        try:
            await self.js.stream_info(self.stream)
        except NotFoundError:
            try:
                await self.js.add_stream(config)
            except BadRequestError:  # another bootstrap made it between our two calls
                return f"stream {self.stream} was made meanwhile"
            return f"made stream {self.stream} ({self.prefix}.>)"
        await self.js.update_stream(config)
        return f"updated stream {self.stream} ({self.prefix}.>)"

    async def publish(self, event: Event) -> None:
        """Publish once: the Nats-Msg-Id makes a repeat within the duplicate window a no-op."""
        await self.js.publish(self.subject(event), event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.dedup_id()})

    async def dead_letter(self, letter: DeadLetter) -> None:
        await self.js.publish(self.dead_letter_subject(letter.service), letter.model_dump_json().encode())

    async def pull(
        self, event: type[Event], durable: str, *, ack_wait_s: float, max_deliver: int, backoff: tuple[float, ...] | None = None
    ) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_deliver=max_deliver,
            backoff=list(backoff) if backoff else None,
            filter_subject=filter_subject(self.prefix, event),
            max_ack_pending=1000,
        )
        return await self.js.pull_subscribe(
            filter_subject(self.prefix, event), durable=durable, stream=self.stream, config=config
        )

    async def key_value(self, name: str) -> KeyValue:
        """Open a KV bucket of the flow table; a missing one is :class:`MissingStream` (bootstrap makes it)."""
        if name not in KV_BUCKETS:
            raise ValueError(f"KV bucket {name!r} is not in reelforge_shared.flow.KV_BUCKETS {KV_BUCKETS}")
        bucket = kv_bucket(self.prefix, name)
        try:
            return await self.js.key_value(bucket)
        except (NotFoundError, BucketNotFoundError):
            raise MissingStream(f"KV bucket {bucket}") from None

    async def ensure_key_value(self, name: str) -> str:
        """Make a KV bucket or bring its replicas up to date (bootstrap only). Returns what was done."""
        bucket = kv_bucket(self.prefix, name)
        try:
            info = await self.js.stream_info(f"KV_{bucket}")
        except NotFoundError:
            await self.js.create_key_value(bucket=bucket, history=1, replicas=self.replicas)
            return f"made KV bucket {bucket}"
        if info.config.num_replicas != self.replicas:  # scaled up (or down) since it was made: update in place
            await self.js.update_stream(replace(info.config, num_replicas=self.replicas))
            return f"updated KV bucket {bucket} to {self.replicas} replicas"
        return f"KV bucket {bucket} is up to date"

    async def bootstrap(self) -> list[str]:
        """Make or update the event stream and every KV bucket of the flow table; what was done, one line each."""
        done = [await self.ensure_stream()]
        for name in KV_BUCKETS:
            done.append(await self.ensure_key_value(name))
        return done

    async def close(self) -> None:
        """Flush what was published, then close (a drain waits on pull subscriptions for its full timeout)."""
        if self.nc.is_connected:
            await self.nc.flush(timeout=5)
        await self.nc.close()


async def bootstrap(settings: CommonSettings) -> list[str]:
    """``reelforge bootstrap``: make or update the stream and the KV buckets, as the settings' (admin) identity.

    Waits for NATS up to ``outage_tolerance_s`` (compose starts it beside the bootstrap job), and as long again
    for a JetStream cluster still forming (no meta leader yet, or one that does not know every peer yet).
    """
    connecting = Bus.connect(settings, name="reelforge-bootstrap", check=False)
    try:
        bus = await asyncio.wait_for(connecting, timeout=settings.outage_tolerance_s)
    except TimeoutError:
        raise StartupFailed(
            f"nats unreachable at {settings.nats_url} for {settings.outage_tolerance_s:g} s "
            "(REELFORGE_NATS_URL, REELFORGE_OUTAGE_TOLERANCE_S)"
        ) from None
    deadline = asyncio.get_running_loop().time() + settings.outage_tolerance_s
    try:
        while True:
            try:
                return await bus.bootstrap()  # idempotent: a retry after a partial run finishes the rest
            except (NatsTimeoutError, ServiceUnavailableError, APIError) as exc:
                if not _cluster_not_ready(exc) or asyncio.get_running_loop().time() >= deadline:
                    if _cluster_not_ready(exc):
                        raise StartupFailed(
                            f"JetStream at {settings.nats_url} was not ready for {settings.outage_tolerance_s:g} s "
                            f"(cluster still forming?): {exc!r} (REELFORGE_OUTAGE_TOLERANCE_S)"
                        ) from None
                    raise
                log.warning("bootstrap.jetstream_not_ready", error=repr(exc))
                await asyncio.sleep(0.5)
    finally:
        await bus.close()


async def wait_for_stream(settings: CommonSettings, service: str, timeout_s: float) -> list[str]:
    """``reelforge wait-for-stream``: return once the event stream and the KV buckets ``service`` uses exist.

    Asked as the service's own identity (STREAM.INFO only), every second, for at most ``timeout_s``; then
    :class:`MissingStream` (or :class:`StartupFailed` when no NATS answered). A Kubernetes pod runs it as
    an init container, so that its service starts once the bootstrap Job is done, not restarting until then.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    buckets = KV_BUCKETS if FLOW[service].kv else ()
    missing: Exception = StartupFailed(f"nats unreachable at {settings.nats_url} for {timeout_s:g} s (REELFORGE_NATS_URL)")
    while loop.time() < deadline:
        try:
            connecting = Bus.connect(settings, name=f"reelforge-{service}-wait", service=service, check=False)
            bus = await asyncio.wait_for(connecting, timeout=max(0.1, deadline - loop.time()))
        except (TimeoutError, OSError, NatsError) as exc:
            log.info("wait_for_stream.nats_unreachable", error=repr(exc))
            await asyncio.sleep(1)
            continue
        try:
            while True:
                try:
                    await bus.require_stream()
                    for name in buckets:
                        await bus.key_value(name)
                    return [f"stream {bus.stream}", *(f"KV bucket {kv_bucket(bus.prefix, n)}" for n in buckets)]
                except MissingStream as exc:
                    missing = exc
                except (NatsTimeoutError, ServiceUnavailableError) as exc:  # a cluster still electing its leader
                    log.info("wait_for_stream.jetstream_not_ready", error=repr(exc))
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(1)
        finally:
            await bus.close()
    raise missing


def _cluster_not_ready(exc: Exception) -> bool:
    """A JetStream cluster still forming times out or answers 503, 10008 (cluster not available) or, while its
    meta leader does not know every peer yet, 10005 (no suitable peers for placement) and 10074 (insufficient resources).
    """
    if isinstance(exc, NatsTimeoutError | ServiceUnavailableError):
        return True
    return isinstance(exc, APIError) and (exc.code == 503 or exc.err_code in {10005, 10008, 10074})
