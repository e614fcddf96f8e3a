"""Open event streams per token, shared by every gateway replica: leases in the job store's KV bucket.

Each token name has one key, ``sse.{name}``, holding its open streams (``/v1/jobs/{id}/events``): a random id
each and the time its lease runs out. Opening reads it, drops the leases that ran out and, if fewer than
``limit`` are left, adds its own and writes the map back compare-and-set on the revision it read: of any
number of concurrent opens, on any replicas, exactly as many as there are places are held (a lost race reads
again); a refused open writes nothing. An open stream refreshes its lease every third of ``lease_s`` and
closing it removes the lease at once; a replica killed with streams open cannot close them, so their places
come back ``lease_s`` after their last refresh at the latest. The value never holds more than ``limit`` leases.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from nats.js.kv import KeyValue

from reelforge_gateway.errors import ApiError
from reelforge_gateway.kv_value import CAS_ATTEMPTS, change_json
from reelforge_shared.jobs.store import token

log = structlog.get_logger("reelforge.gateway")
Leases = dict[str, float]  # stream id -> when its lease runs out (epoch seconds)


class StreamsBusy(RuntimeError):
    """The key kept changing under every attempt (far more concurrent opens of one token than expected)."""


@dataclass(kw_only=True, slots=True)
class SharedStreams:
    kv: KeyValue
    limit: int = 8
    lease_s: float = 60.0
    clock: Callable[[], float] = field(default=time.time)

    async def open(self, name: str) -> StreamLease:
        """Hold one of ``name``'s places for a new stream, else 429 ``too_many_streams`` naming the limit."""
        lease = StreamLease(streams=self, name=name, id=uuid.uuid4().hex[:16], refreshed=self.clock())

        def add(leases: Leases, now: float) -> Leases:
            if len(leases) >= self.limit:
                raise ApiError(
                    429,
                    "too_many_streams",
                    f"{len(leases)} event streams of {name!r} are open on the gateway's replicas "
                    f"(at most {self.limit}, REELFORGE_MAX_EVENT_STREAMS)",
                    headers={"Retry-After": "10"},
                    open=len(leases),
                    limit=self.limit,
                )
            return leases | {lease.id: now + self.lease_s}

        await self.change(name, add)
        return lease

    async def change(self, name: str, change: Callable[[Leases, float], Leases | None]) -> Leases:
        """Apply ``change`` to ``name``'s live leases (None: nothing to write) until the write lands; the leases after."""

        def apply(leases: Leases) -> tuple[Leases | None, Leases]:
            now = self.clock()
            live = {stream: until for stream, until in leases.items() if until > now}
            after = change(live, now)
            return after, live if after is None else after

        def busy() -> Exception:
            return StreamsBusy(f"event streams of {name!r}: kept changing under {CAS_ATTEMPTS} attempts")

        return await change_json(self.kv, f"sse.{token(name)}", {}, apply, busy)


@dataclass(kw_only=True, slots=True)
class StreamLease:
    """One open event stream's place: :meth:`refresh` it while the stream runs, :meth:`close` it when it ends."""

    streams: SharedStreams
    name: str
    id: str
    refreshed: float
    open: bool = True

    def due(self) -> bool:
        """A third of the lease has passed since the last refresh."""
        return self.streams.clock() - self.refreshed >= self.streams.lease_s / 3

    async def refresh(self) -> bool:
        """Extend the lease by ``lease_s``; False if it had run out (its place may be another stream's now)."""

        def extend(leases: Leases, now: float) -> Leases | None:
            return leases | {self.id: now + self.streams.lease_s} if self.id in leases else None

        held = self.id in await self.streams.change(self.name, extend)
        self.refreshed = self.streams.clock()
        return held

    async def close(self) -> None:
        """Give the place back (once); should the store not answer, the lease runs out on its own."""
        if not self.open:
            return
        self.open = False

        def remove(leases: Leases, _now: float) -> Leases | None:
            return {k: v for k, v in leases.items() if k != self.id} if self.id in leases else None

        try:
            await self.streams.change(self.name, remove)
        except Exception as exc:  # noqa: BLE001 - the lease runs out by itself; a stream's end must not fail on this
            log.warning("gateway.stream_close_deferred", token=self.name, error=repr(exc))
