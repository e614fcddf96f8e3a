"""NATS over TLS on a real nats-server, with a certificate authority made by the test (openssl).

The worker's settings are the ones docs/security.md documents: ``REELFORGE_NATS_URL=tls://...``,
``REELFORGE_NATS_TLS_CA`` (the CA that signed the server's certificate) and, for a server that verifies
its clients, ``REELFORGE_NATS_TLS_CERT`` / ``REELFORGE_NATS_TLS_KEY``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from reelforge_shared.bus import Bus, bootstrap
from reelforge_shared.clients import nats_connect_options
from reelforge_shared.embedded import EmbeddedServer, free_port, start_nats
from reelforge_shared.events import JobCancelled
from reelforge_shared.settings import CommonSettings


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl makes the test's certificates (Debian's openssl package)"
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificate(folder: Path, name: str, usage: str) -> None:
    """``name``.pem/.key signed by the test CA: for 127.0.0.1 and localhost."""
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )
    (folder / f"{name}.ext").write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        cwd=folder,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A certificate authority, a server certificate and a client certificate, made now."""
    folder = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Reelforge test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )
    _certificate(folder, "server", "serverAuth")
    _certificate(folder, "client", "clientAuth")
    return folder


def _tls_nats(folder: Path, pki: Path, verify_clients: bool = False) -> EmbeddedServer:
    block = f'tls {{\n  cert_file: "{pki / "server.pem"}"\n  key_file: "{pki / "server.key"}"\n'
    if verify_clients:
        block += f'  ca_file: "{pki / "ca.pem"}"\n  verify: true\n'
    return start_nats(folder, extra=block + "}\n")


def _tls_url(server: EmbeddedServer) -> str:
    return server.url.replace("nats://", "tls://")


async def _refused(url: str, settings: CommonSettings) -> str:
    """The error of one connect that must fail (no reconnect: the client would otherwise retry without end)."""
    try:
        nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5, **nats_connect_options(settings))
    except Exception as exc:  # noqa: BLE001 - the refusal is what is checked
        return f"{type(exc).__name__}: {exc}"
    await nc.close()
    raise AssertionError(f"{url}: connected without the right certificates")


async def _round_trip(settings: CommonSettings) -> None:
    await bootstrap(settings)  # this server's stream, as `reelforge bootstrap` makes it
    bus = await Bus.connect(settings, name="tls-test")
    try:
        ack = await bus.js.publish(bus.subject(JobCancelled), JobCancelled(job_id="j-tls").model_dump_json().encode())
        message = await bus.js.get_msg(bus.stream, ack.seq)
        assert JobCancelled.model_validate_json(message.data).job_id == "j-tls"
        assert bus.nc.connected_url is not None
        assert bus.nc.connected_url.scheme == "tls"
    finally:
        await bus.close()


def test_the_bus_talks_to_nats_over_tls_checked_against_the_ca_file(tmp_path: Path, pki: Path, overrides: dict[str, Any]) -> None:
    server = _tls_nats(tmp_path / "nats", pki)
    try:
        settings = CommonSettings(**overrides | {"nats_url": _tls_url(server), "nats_tls_ca": str(pki / "ca.pem")})
        asyncio.run(_round_trip(settings))  # a JetStream publish and read over TLS
        untrusted = CommonSettings(**overrides | {"nats_url": _tls_url(server)})  # the system's CAs do not know the test CA
        assert "CERTIFICATE_VERIFY_FAILED" in asyncio.run(_refused(_tls_url(server), untrusted))
        plain = asyncio.run(_refused(server.url, CommonSettings(**overrides | {"nats_url": server.url})))
        assert plain  # the server requires TLS: a plain client is refused
    finally:
        server.stop()


def test_mutual_tls_needs_the_client_certificate(tmp_path: Path, pki: Path, overrides: dict[str, Any]) -> None:
    server = _tls_nats(tmp_path / "nats", pki, verify_clients=True)
    try:
        url, ca = _tls_url(server), str(pki / "ca.pem")
        with_cert = CommonSettings(
            **overrides
            | {
                "nats_url": url,
                "nats_tls_ca": ca,
                "nats_tls_cert": str(pki / "client.pem"),
                "nats_tls_key": str(pki / "client.key"),
            }
        )
        asyncio.run(_round_trip(with_cert))
        assert asyncio.run(_refused(url, CommonSettings(**overrides | {"nats_url": url, "nats_tls_ca": ca})))
    finally:
        server.stop()


def test_a_worker_process_connects_with_its_tls_settings(
    tmp_path: Path, pki: Path, overrides: dict[str, Any], store: Any, s3_keys: dict[str, dict[str, str]]
) -> None:
    """`reelforge worker encoder` with REELFORGE_NATS_URL=tls://... and REELFORGE_NATS_TLS_CA: healthy, nats not down."""
    server = _tls_nats(tmp_path / "nats", pki)
    health = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "REELFORGE_NATS_URL": _tls_url(server),
        "REELFORGE_NATS_TLS_CA": str(pki / "ca.pem"),
        "REELFORGE_S3_ENDPOINT": overrides["s3_endpoint"],
        "REELFORGE_S3_ACCESS_KEY": s3_keys["encoder"]["s3_access_key"],
        "REELFORGE_S3_SECRET_KEY": s3_keys["encoder"]["s3_secret_key"],
        "REELFORGE_WORK_BUCKET": overrides["work_bucket"],
        "REELFORGE_DELIVERY_BUCKET": overrides["delivery_bucket"],
        "REELFORGE_SUBJECT_PREFIX": overrides["subject_prefix"],
        "REELFORGE_METRICS_PORT": str(health),
        "REELFORGE_LOG_JSON": "true",
    }
    booted = subprocess.run([sys.executable, "-m", "reelforge.cli", "bootstrap"], env=env, capture_output=True, text=True)
    assert booted.returncode == 0, booted.stdout + booted.stderr  # the stream, over TLS, as a deploy's bootstrap job
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelforge.cli", "worker", "encoder"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, body = time.monotonic() + 180, None
        while not (body and body["ok"] and not body["down"]):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, body
            try:
                body = httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=1).json()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
