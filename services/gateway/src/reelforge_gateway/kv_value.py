"""One JSON value in the job store's KV bucket changed compare-and-set by any number of gateway replicas at once.

:func:`change_json` reads the value, lets ``change`` decide what to write (or nothing) and writes it on the
revision it read; a write that loses the race reads again. The per-token rate window (``rates``) and the open
event streams (``streams``) are each one such value.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

R = TypeVar("R")
CAS_ATTEMPTS = 200  # one token's concurrent requests race on one key; each lost race is one more read


async def change_json(
    kv: KeyValue, key: str, empty: Any, change: Callable[[Any], tuple[Any, R]], busy: Callable[[], Exception]
) -> R:
    """``change(value)`` -> (the value to write, None to write nothing; the result) until a write lands or nothing is
    written; ``busy()`` is raised when the key kept changing under every attempt."""
    for _ in range(CAS_ATTEMPTS):
        try:
            entry = await kv.get(key)
            value, revision = json.loads(entry.value or json.dumps(empty).encode()), entry.revision
        except KeyNotFoundError:
            value, revision = empty, None
        after, result = change(value)
        if after is None:
            return result
        encoded = json.dumps(after, separators=(",", ":")).encode()
        try:
            if revision is None:
                await kv.create(key, encoded)
            else:
                await kv.update(key, encoded, last=revision)
        except KeyWrongLastSequenceError:  # another request (here or on another replica) wrote first
            await asyncio.sleep(0)
            continue
        return result
    raise busy()
