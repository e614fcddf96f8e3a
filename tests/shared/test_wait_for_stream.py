"""`reelforge wait-for-stream` (each Kubernetes pod's init container) on a real nats-server: it returns once
`reelforge bootstrap` has made the stream and KV buckets, and exits 2 naming bootstrap when it never does."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from reelforge_shared.bus import bootstrap
from reelforge_shared.settings import CommonSettings


async def _wait(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reelforge.cli",
        "wait-for-stream",
        *args,
        env=os.environ | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_wait_for_stream_returns_once_bootstrap_made_the_stream_and_buckets(overrides) -> None:
    fresh = overrides | {"subject_prefix": f"w{uuid.uuid4().hex[:10]}"}  # nothing bootstrapped under it yet
    env = {"REELFORGE_NATS_URL": fresh["nats_url"], "REELFORGE_SUBJECT_PREFIX": fresh["subject_prefix"]}

    # Both start together: while the first runs out its 2 s and exits, the second has waited as long and still waits.
    refused = await _wait(env, "gateway", "--timeout-s", "2")
    waiting = await _wait(env, "gateway", "--timeout-s", "60")
    out, _ = await asyncio.wait_for(refused.communicate(), 60)
    assert refused.returncode == 2, out.decode()
    assert "reelforge bootstrap" in " ".join(out.decode().split())
    assert waiting.returncode is None  # still waiting
    await bootstrap(CommonSettings(**fresh))
    out, _ = await asyncio.wait_for(waiting.communicate(), 30)
    assert waiting.returncode == 0, out.decode()
    assert "found stream" in out.decode()
    assert "KV bucket" in out.decode()  # the gateway's identity writes the job store: it waits for it too
