"""Readiness states behind ``/healthz`` and the ``/metrics`` endpoint of every worker.

States follow cog's contract: STARTING (loading), READY (idle), BUSY (handling an event),
SETUP_FAILED (will not become ready; the probe fails and Kubernetes restarts the pod), RETIRING (a
handler is wedged past its limit: the worker takes no more work, drains, and exits for its supervisor).

Beside the state, each dependency (``nats``, ``s3``) the worker found unreachable is listed under
``down`` until it answers again. The status code stays 200 meanwhile: the worker is alive and waiting
the outage out, and a liveness probe that restarted it could not bring S3 back (it would only lose
the work in hand). ``/livez`` answers the same question alone.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class Health:
    def __init__(self, service: str) -> None:
        self.service = service
        self.state = "STARTING"
        self.detail = ""
        self._in_flight = 0
        self._lock = threading.Lock()
        self.down: dict[str, str] = {}  # dependency -> what failed, while it is unreachable

    def ready(self) -> None:
        self.state = "READY"

    def setup_failed(self, detail: str) -> None:
        self.state, self.detail = "SETUP_FAILED", detail

    def busy(self) -> None:
        with self._lock:
            self._in_flight += 1
            if self.state != "RETIRING":
                self.state = "BUSY"

    def idle(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0 and self.state == "BUSY":
                self.state = "READY"

    def retiring(self, detail: str) -> None:
        """Not ready for good: a handler is wedged; the worker drains and exits."""
        with self._lock:
            self.state, self.detail = "RETIRING", detail

    def dependency_down(self, dependency: str, detail: str) -> None:
        self.down[dependency] = detail

    def dependency_up(self, dependency: str) -> None:
        self.down.pop(dependency, None)

    @property
    def alive(self) -> bool:
        return self.state != "SETUP_FAILED"

    @property
    def ok(self) -> bool:
        return self.state in {"READY", "BUSY"}

    def as_dict(self) -> dict[str, object]:
        return {"service": self.service, "state": self.state, "detail": self.detail, "down": dict(self.down)}


def serve_health(port: int, services: list[Health], host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104 - probes come from outside the pod
    """Serve /healthz (200 when every service is ready) and /metrics in a daemon thread."""

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, status, kind = generate_latest(), 200, CONTENT_TYPE_LATEST
            elif self.path in {"/healthz", "/health"}:
                ok = all(h.ok for h in services)
                down = sorted({d for h in services for d in h.down})
                body = json.dumps({"ok": ok, "down": down, "services": [h.as_dict() for h in services]}).encode()
                status, kind = (200 if ok else 503), "application/json"
            elif self.path == "/livez":
                ok = all(h.alive for h in services)
                body = json.dumps({"ok": ok}).encode()
                status, kind = (200 if ok else 503), "application/json"
            else:
                body, status, kind = b"not found", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # probes every few seconds are not news
            return

    server = ThreadingHTTPServer((host, port), _Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
