"""Per-token rate limits shared by every gateway replica: a moving window kept in the job store's KV bucket.

Each token name has one key, ``rate.{name}``, holding the times (epoch seconds) of its admitted requests
in the last ``window_s``. A request reads it, drops the hits older than the window and, if a place is
left, appends its own and writes the list back compare-and-set on the revision it read: of any number
of concurrent requests, on any replicas, exactly as many as there are places are admitted (a lost race
reads again). A refused request writes nothing. The value never holds more than ``per_minute`` times.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.js.kv import KeyValue

from reelforge_gateway.kv_value import CAS_ATTEMPTS, change_json
from reelforge_shared.jobs.store import token


class RateWindowBusy(RuntimeError):
    """The key kept changing under every attempt (far more concurrent requests of one token than expected)."""


@dataclass(kw_only=True, slots=True)
class SharedWindow:
    kv: KeyValue
    per_minute: int
    window_s: float = 60.0
    clock: Callable[[], float] = field(default=time.time)

    async def hit(self, name: str) -> int | None:
        """Count one request of ``name``: None when admitted, else the seconds until the oldest hit leaves the window."""

        def admit(hits: list[float]) -> tuple[list[float] | None, int | None]:
            now = self.clock()
            hits = [t for t in hits if t > now - self.window_s]
            if len(hits) >= self.per_minute:
                return None, max(1, math.ceil(hits[0] + self.window_s - now))
            return [*hits, round(now, 3)], None

        def busy() -> Exception:
            return RateWindowBusy(f"rate window of {name!r}: kept changing under {CAS_ATTEMPTS} attempts")

        return await change_json(self.kv, f"rate.{token(name)}", [], admit, busy)
