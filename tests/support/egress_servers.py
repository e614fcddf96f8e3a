"""Tiny real HTTP servers for the egress tests: one on 127.0.0.2 (standing for a public host) and one on 127.0.0.1.

On Linux all of 127/8 is loopback, so both listen on one port and only the address tells them apart.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

PUBLIC = "127.0.0.2"  # allowed by the tests' policy (allow_networks), as a public address would be
INTERNAL = "127.0.0.1"  # the internal target an attacker wants

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    host: str
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    answer: Answer | None = None
    server: asyncio.Server | None = None
    tls: ssl.SSLContext | None = None  # https when set

    async def start(self) -> Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
            )
            self.requests.append(head + await reader.readexactly(length))
            await (self.answer or ok)(writer)
            writer.close()

        self.server = await asyncio.start_server(handle, self.host, self.port, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/", name: str | None = None) -> str:
        return f"{'https' if self.tls else 'http'}://{name or self.host}:{self.port}{path}"


async def public_and_internal(tries: int = 20) -> tuple[Server, Server]:
    """A server on PUBLIC and one on INTERNAL on the same port (only the address tells them apart).

    The port the kernel gives the first may already be taken on 127.0.0.1 (another test's server or an outgoing
    connection's local port): then both go and another port is tried.
    """
    for _ in range(tries):
        public = await Server(PUBLIC).start()
        try:
            return public, await Server(INTERNAL, port=public.port).start()
        except OSError:
            assert public.server is not None
            public.server.close()
            await public.server.wait_closed()
    raise OSError(f"no port free on both {PUBLIC} and {INTERNAL} in {tries} tries")


async def stop(*servers: Server) -> None:
    for server in servers:
        assert server.server is not None
        server.server.close()


async def ok(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()


def tls_for(name: str, folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a certificate of ``name`` made now by openssl."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl makes the test's certificate (Debian's openssl package)"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
        + ["-keyout", "key.pem", "-out", "cert.pem", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return server, ssl.create_default_context(cafile=str(folder / "cert.pem"))
