"""A real local HTTP server that receives webhooks and answers from a per-path plan (e.g. 503, 503, 200)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class WebhookReceiver:
    plans: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer in turn (then the last)
    received: asyncio.Queue = field(default_factory=asyncio.Queue)
    server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def start(self) -> WebhookReceiver:
        receiver, loop = self, asyncio.get_running_loop()
        counts: dict[str, int] = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                plan = receiver.plans.get(self.path, [200])
                n = counts[self.path] = counts.get(self.path, 0) + 1
                status = plan[min(n, len(plan)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                record = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
                loop.call_soon_threadsafe(receiver.received.put_nowait, record)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    async def next(self, timeout: float = 30) -> Received:
        return await asyncio.wait_for(self.received.get(), timeout)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
