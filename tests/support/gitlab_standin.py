"""STAND-IN for GitLab: no GitLab server can run on these machines.

A local HTTP peer that speaks the endpoints Reelforge uses, as GitLab documents them:
``POST /api/v4/projects/:id/uploads`` (multipart field ``file``, ``PRIVATE-TOKEN`` header; answers
201 with ``url``, ``full_path``, ``markdown``), ``GET /api/v4/projects/:id`` (the project's numeric
id and path) and ``GET``/``HEAD`` on the returned ``full_path``.
It keeps what was uploaded, so tests read back exactly the bytes python-gitlab sent.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class GitLabStandIn:
    token: str
    project: str = "reelforge/media-assets"
    project_id: int = 4242
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # full_path -> (filename, data)
    uploads: list[str] = field(default_factory=list)  # filenames, in upload order
    head_status: int | None = None  # force an answer to HEAD (the upload gate's failure case)
    refuse: dict[str, int] = field(default_factory=dict)  # filename -> status answered to its upload (a partial failure)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> GitLabStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json", head: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_POST(self) -> None:
                prefix = "/api/v4/projects/"
                if not (self.path.startswith(prefix) and self.path.endswith("/uploads")):
                    return self._send(404, b'{"message":"404 Not Found"}')
                ref = unquote(self.path[len(prefix) : -len("/uploads")])
                if ref not in {standin.project, str(standin.project_id)}:
                    return self._send(404, b'{"message":"404 Project Not Found"}')
                if self.headers.get("PRIVATE-TOKEN") != standin.token:
                    return self._send(401, b'{"message":"401 Unauthorized"}')
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = BytesParser(policy=HTTP).parsebytes(
                    f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
                )
                part = next(p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file")
                filename, data = part.get_filename(), part.get_payload(decode=True)
                if filename in standin.refuse:
                    return self._send(standin.refuse[filename], b'{"message":"refused by the test"}')
                secret = uuid.uuid4().hex
                url = f"/uploads/{secret}/{filename}"
                full_path = f"/-/project/{standin.project_id}{url}"
                standin.files[full_path] = (filename, data)
                standin.uploads.append(filename)
                answer = {
                    "id": len(standin.uploads),
                    "alt": filename,
                    "url": url,
                    "full_path": full_path,
                    "markdown": f"[{filename}]({url})",
                }
                return self._send(201, json.dumps(answer).encode())

            def _serve(self, head: bool) -> None:
                if head and standin.head_status is not None:
                    return self._send(standin.head_status, b"", head=True)
                if self.path not in standin.files:
                    return self._send(404, b'{"message":"404 Not Found"}', head=head)
                return self._send(200, standin.files[self.path][1], "application/octet-stream", head=head)

            def do_GET(self) -> None:
                prefix = "/api/v4/projects/"
                if self.path.startswith(prefix):  # GET /projects/:id (id or URL-encoded path)
                    if self.headers.get("PRIVATE-TOKEN") != standin.token:
                        return self._send(401, b'{"message":"401 Unauthorized"}')
                    if unquote(self.path[len(prefix) :]) not in {standin.project, str(standin.project_id)}:
                        return self._send(404, b'{"message":"404 Project Not Found"}')
                    project = {"id": standin.project_id, "path_with_namespace": standin.project}
                    return self._send(200, json.dumps(project).encode())
                return self._serve(head=False)

            def do_HEAD(self) -> None:
                self._serve(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
