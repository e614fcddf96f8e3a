"""A gateway as its own ``reelforge worker gateway`` process (as in production): its memory can be read, it can be killed."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reelforge_shared.embedded import find_binary, free_port


@dataclass
class GatewayProcess:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc status")


@contextmanager
def gateway_process(overrides: dict[str, Any], log: Path, **settings: Any) -> Iterator[GatewayProcess]:
    """Start a gateway process with the test's ``overrides`` and ``settings`` (``REELFORGE_`` + name upper-cased);
    wait for /healthz; kill it on exit (SIGKILL: nothing it holds is given back)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
    env |= {f"REELFORGE_{k.upper()}": str(v) for k, v in (overrides | settings).items()}
    env |= {"REELFORGE_GATEWAY_PORT": str(port), "REELFORGE_METRICS_PORT": str(free_port())}
    process = subprocess.Popen(
        [find_binary("reelforge"), "worker", "gateway"], stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env
    )
    gateway = GatewayProcess(process, port, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{gateway.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield gateway
    finally:
        process.kill()
        process.wait()
