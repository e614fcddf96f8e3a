"""NATS JetStream: connect, ensure the stream, publish with de-duplication ids, pull consumers.

One stream per subject prefix holds every event (``{prefix}.>``), so downstream users can replay a
job's history; each service reads it through durable pull consumers with explicit acks.

``REELFORGE_NATS_URL`` may list several servers of a cluster; the client reconnects without limit
(across that list and the servers the cluster announces). The stream and the KV buckets get
``REELFORGE_STREAM_REPLICAS`` replicas; an existing stream is updated in place, never recreated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from structlog import get_logger

from reelforge_shared.clients import nats_connect_options
from reelforge_shared.events import DeadLetter, Event
from reelforge_shared.flow import dead_letter_subject, filter_subject, kv_bucket, stream_name, subject
from reelforge_shared.settings import CommonSettings

log = get_logger("reelforge.bus")


async def _log_error(exc: Exception) -> None:
    log.warning("nats.error", error=repr(exc))


def _log_state(what: str) -> Callable[[], Awaitable[None]]:
    async def callback() -> None:
        log.warning(what) if what.endswith("disconnected") else log.info(what)

    return callback


@dataclass(slots=True)
class Bus:
    nc: Client
    js: JetStreamContext
    prefix: str
    dedup_window_s: float
    replicas: int = 1

    @classmethod
    async def connect(cls, settings: CommonSettings, name: str = "reelforge", service: str | None = None) -> Bus:
        """Connect with the settings' credentials and TLS; a ``service`` gets its replies on its own inbox."""
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
            await bus.ensure_stream()
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

    async def ensure_stream(self) -> None:
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
            except BadRequestError:  # another service created it between our two calls
                pass
        else:
            await self.js.update_stream(config)

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
        bucket = kv_bucket(self.prefix, name)
        try:
            kv = await self.js.key_value(bucket)
        except Exception:  # noqa: BLE001 - nats-py raises several types for a missing bucket
            return await self.js.create_key_value(bucket=bucket, history=1, replicas=self.replicas)
        info = await self.js.stream_info(f"KV_{bucket}")
        if info.config.num_replicas != self.replicas:  # scaled up (or down) since it was made: update in place
            await self.js.update_stream(replace(info.config, num_replicas=self.replicas))
        return kv

    async def close(self) -> None:
        """Flush what was published, then close (a drain waits on pull subscriptions for its full timeout)."""
        if self.nc.is_connected:
            await self.nc.flush(timeout=5)
        await self.nc.close()
