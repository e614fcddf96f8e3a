"""The job store's observer: one route per job event, folding it into the record.

An observer records what happened and takes no part in the job's work. One decision is taken there
because only the store can take it race-free: the update that sees the last segment delivered
publishes ``film.requested`` (once per film version; a redelivery of that same update re-publishes
the same version, which the bus drops by its Nats-Msg-Id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reelforge_shared.events import Event
from reelforge_shared.jobs.store import Ledger
from reelforge_shared.jobs.transitions import OBSERVED_EVENTS


def observer_routes(ledger: Callable[[], Ledger | None]) -> list[Any]:
    """One route per job event, folding it into the record.

    An observer: it records what happened and takes no part in the job's work (its only output is
    the film request the last delivery triggers). ``ledger`` returns the open ledger (the service's,
    opened before any route runs).
    """
    from reelforge_shared.runner import Route

    async def observe(event: Event, _deps: Any) -> list[Event]:
        opened = ledger()
        if opened is None:
            raise RuntimeError("the job ledger is not open")
        _, publish = await opened.apply(event)
        return publish

    return [Route(event, observe, observer=True) for event in OBSERVED_EVENTS]
