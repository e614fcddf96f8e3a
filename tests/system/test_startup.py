"""Start-up waits like run time does (issue 16 point 5): S3 and NATS away at start are waited out within
REELFORGE_OUTAGE_TOLERANCE_S with /healthz naming them; a final failure is one line naming the setting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

import httpx
import pytest

from reelforge_shared.embedded import free_port


class Forwarder:
    """A TCP forwarder on a fixed port to a real server, started when the test wants the server "back"."""

    def __init__(self, port: int, target: str) -> None:
        self.port = port
        host, _, target_port = target.split("://")[-1].rpartition(":")
        self.target = (host, int(target_port))
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


def _env(overrides: dict[str, Any], keys: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
    env |= {f"REELFORGE_{k.upper()}": str(v) for k, v in (overrides | keys).items()}
    env |= {"REELFORGE_LOG_JSON": "true", **extra}
    return env


async def _worker(name: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reelforge.cli",
        "worker",
        name,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _health_until(port: int, proc: asyncio.subprocess.Process, condition: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=1) as client:
        async with asyncio.timeout(120):
            while True:
                assert proc.returncode is None, "the worker exited"
                with contextlib.suppress(httpx.TransportError, ValueError):
                    body = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
                    if condition(body):
                        return body
                await asyncio.sleep(0.2)


async def test_s3_and_nats_away_at_start_are_waited_out_and_named_by_healthz(overrides, store, s3_keys) -> None:
    s3, nats_port, health = Forwarder(free_port(), overrides["s3_endpoint"]), free_port(), free_port()
    nats = Forwarder(nats_port, overrides["nats_url"])
    env = _env(
        overrides,
        s3_keys["encoder"],
        REELFORGE_S3_ENDPOINT=f"http://127.0.0.1:{s3.port}",
        REELFORGE_NATS_URL=f"nats://127.0.0.1:{nats_port}",
        REELFORGE_METRICS_PORT=str(health),
        REELFORGE_OUTAGE_TOLERANCE_S="120",
    )
    proc = await _worker("encoder", env)
    try:
        body = await _health_until(health, proc, lambda b: "s3" in b["down"])
        assert not body["ok"]
        await s3.start()  # S3 is back: the worker goes on to NATS, still away
        await _health_until(health, proc, lambda b: "nats" in b["down"] and "s3" not in b["down"])
        await nats.start()
        body = await _health_until(health, proc, lambda b: b["ok"])
        assert not body["down"]
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)
        await s3.stop()
        await nats.stop()


async def test_s3_away_past_the_tolerance_ends_in_one_line_naming_the_settings(overrides, s3_keys) -> None:
    env = _env(
        overrides,
        s3_keys["encoder"],
        REELFORGE_S3_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        REELFORGE_METRICS_PORT=str(free_port()),
        REELFORGE_OUTAGE_TOLERANCE_S="2",
    )
    proc = await _worker("encoder", env)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    assert "╭" not in text
    [line] = [json.loads(line) for line in text.splitlines() if '"worker.cannot_start"' in line]
    assert "REELFORGE_OUTAGE_TOLERANCE_S=2" in line["error"]
    assert "REELFORGE_S3_ENDPOINT" in line["error"]


@pytest.mark.parametrize(
    ("allow", "model", "setting"),
    [("0", "reelforge/tiny-sd", "REELFORGE_ALLOW_TEST_MODEL"), ("1", "/nowhere/no-model", "REELFORGE_MODEL")],
    ids=["refused-test-model", "missing-model"],
)
async def test_a_refused_or_missing_model_ends_in_one_line_naming_the_setting(
    overrides, store, s3_keys, allow: str, model: str, setting: str
) -> None:
    env = _env(
        overrides,
        s3_keys["generator"],
        REELFORGE_METRICS_PORT=str(free_port()),
        REELFORGE_ALLOW_TEST_MODEL=allow,
        REELFORGE_MODEL=model,
    )
    proc = await _worker("generator", env)
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode()
    assert proc.returncode == 2, text[-3000:]
    assert "Traceback" not in text
    assert "╭" not in text
    [line] = [json.loads(line) for line in text.splitlines() if '"worker.cannot_start"' in line]
    assert setting in line["error"], line
