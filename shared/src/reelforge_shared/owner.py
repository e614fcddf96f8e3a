"""The owner of a job or a stored shot: the API token's name, or one word for everything without an API identity.

Kept apart from ``reelforge_shared.jobs`` so that low modules (the shot store) can name the owner without importing
the job store, which imports them.
"""

from __future__ import annotations

LOCAL_OWNER = "local"  # the one owner without an API identity: `reelforge run`, events put on the bus, the gateway with auth off
