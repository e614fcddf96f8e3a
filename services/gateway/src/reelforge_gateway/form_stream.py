"""A ``multipart/form-data`` body with one file (an image, or audio), read as it streams: never held whole in memory.

- **Text fields** are kept (each at most ``TEXT_FIELD_BYTES``, at most ``MAX_PARTS`` parts): 422 naming the field above.
- **The file part** goes to S3 as it comes (:class:`~reelforge_shared.storage.StreamedPut`, at most one 5 MiB part in
  memory) under a staging key (``Keys.incoming``), its SHA-256 counted on the way. An image's type and pixel count
  are read from its first bytes (:func:`~reelforge_shared.references.image_header`) before anything is stored: a file
  that is not a PNG, JPEG or WebP, or declares more than ``REELFORGE_MAX_IMAGE_PIXELS`` (a decompression bomb), is
  refused at once. The part is audio when its ``Content-Type`` says ``audio/*`` (and the caller accepts audio).
- **The cap** (``REELFORGE_MAX_UPLOAD_BYTES``) is counted on the file's bytes as they come: 413 as soon as it is
  passed (the guard counts the whole body too, and cuts it there).
- **Refused, cut or failed**: whatever was written (parts, object) is removed before the error goes on.

The caller decodes the stored file whole (:func:`check_staged`) before it publishes or answers anything, then moves it
where it belongs or removes it. What a gateway killed mid-upload leaves under ``incoming/`` (an object, an unfinished
multipart upload) is removed by :func:`sweep_incoming` once it is ``STAGED_FOR`` old.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mmap
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from reelforge_gateway.errors import ApiError
from reelforge_gateway.middleware import too_large
from reelforge_shared.errors import InvalidInput
from reelforge_shared.references import Kind, ReferenceLimits, check_audio_file, check_image_file, image_header
from reelforge_shared.storage import PART_BYTES, Keys, ObjectStore, StreamedPut

log = structlog.get_logger("reelforge.gateway")
TEXT_FIELD_BYTES = 16_384  # the longest text field (a prompt is at most 2,000 characters, 4 bytes each at most)
MAX_PARTS = 32  # the form has 13 fields
PART_HEADER_BYTES = 8_192  # one part's headers (Content-Disposition, Content-Type)
HEADER_WINDOW = 1024 * 1024  # an image's type and size are in its first MiB (JPEG metadata before the frame included)
LOOKS = (64, 16_384, 131_072, HEADER_WINDOW)  # when the header is read again, as the image's first bytes come


def invalid(field_name: str, message: str, error: str = "invalid_request") -> ApiError:
    return ApiError(422, error, message, fields=[{"field": field_name, "message": message}], field=field_name)


@dataclass(kw_only=True, frozen=True, slots=True)
class StagedFile:
    """An uploaded file in storage under ``key`` (staged: not yet checked whole); an image's type from its header."""

    key: str
    size: int
    sha256: str
    kind: Kind
    content_type: str | None  # an image's, from its header; audio: known once decoded


@dataclass(kw_only=True, slots=True)
class _FileSink:
    """The file part's bytes: counted, hashed, an image's header checked, written to S3 a part at a time.

    The part is gathered in one anonymous mapping of ``PART_BYTES``, reused for every part: its pages take memory only
    as they are written (a small image costs its size), and it is never grown and copied.
    """

    put: StreamedPut
    name: str
    kind: Kind
    max_bytes: int
    max_pixels: int
    error: str
    size: int = 0
    buffer: mmap.mmap = field(default_factory=lambda: mmap.mmap(-1, PART_BYTES))
    filled: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    header: tuple[str, int, int] | None = None
    looks: list[int] = field(default_factory=lambda: list(LOOKS))

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise too_large(self.max_bytes, "REELFORGE_MAX_UPLOAD_BYTES")
        self.digest.update(data)
        with memoryview(data) as rest:
            while rest:
                taken = min(PART_BYTES - self.filled, len(rest))
                self.buffer[self.filled : self.filled + taken] = rest[:taken]
                self.filled, rest = self.filled + taken, rest[taken:]
                while self.kind == "image" and self.header is None and self.looks and self.filled >= self.looks[0]:
                    self._look(last=len(self.looks) == 1)
                    self.looks.pop(0)
                if self.filled == PART_BYTES:  # the header is known by now (HEADER_WINDOW < PART_BYTES)
                    await asyncio.to_thread(self._send_part)

    def _send_part(self) -> None:
        with memoryview(self.buffer) as whole:
            self.put.part(whole)
        self.filled = 0

    async def finish(self) -> StagedFile:
        if self.kind == "image" and self.header is None:
            self._look(last=True)
        await asyncio.to_thread(self._send_rest)
        return StagedFile(
            key=self.put.key,
            size=self.size,
            sha256=self.digest.hexdigest(),
            kind=self.kind,
            content_type=self.header[0] if self.header is not None else None,
        )

    def _send_rest(self) -> None:
        with memoryview(self.buffer) as whole, whole[: self.filled] as rest:
            self.put.finish(rest)
        self.close()

    def abort(self) -> None:
        self.put.abort()
        self.close()

    def close(self) -> None:
        try:
            self.buffer.close()
        except BufferError:  # a view of it still held somewhere: it is unmapped when that goes
            pass

    def _look(self, *, last: bool) -> None:
        try:
            self.header = image_header(self.buffer[: min(self.filled, HEADER_WINDOW)], self.name, self.max_pixels, last_look=last)
        except InvalidInput as exc:
            raise invalid(self.name, str(exc), self.error) from None
        if self.header is not None:
            self.put.content_type = self.header[0]


@dataclass(kw_only=True, slots=True)
class _Part:
    headers: list[tuple[str, str]] = field(default_factory=list)
    header_bytes: int = 0
    name: str = ""
    value: bytearray = field(default_factory=bytearray)
    sink: _FileSink | None = None


@dataclass(kw_only=True, frozen=True, slots=True)
class FileField:
    """The form's file field: its name, whether audio is accepted (else images only), the caps, the 422 code."""

    name: str
    audio: bool
    max_bytes: int
    max_pixels: int
    error: str


async def read_form(
    request: Request, *, store: ObjectStore, bucket: str, file: FileField
) -> tuple[dict[str, str], StagedFile | None]:
    """The form's text fields, and its file staged in storage (None if the form has none).

    Raises :class:`ApiError` (413 past ``max_bytes``, 422 naming the field), with nothing left in storage.
    """
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary", b"")
    if kind != b"multipart/form-data" or not boundary:
        got = kind.decode("latin-1")[:100] or "no Content-Type"
        raise invalid(file.name, f"{file.name}: Field required (a multipart/form-data body with a boundary, got {got!r})")
    fields: dict[str, str] = {}
    sinks: list[_FileSink] = []
    events: list[tuple[str, bytes]] = []
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": lambda: events.append(("begin", b"")),
            "on_header_field": lambda data, start, end: events.append(("field", data[start:end])),
            "on_header_value": lambda data, start, end: events.append(("value", data[start:end])),
            "on_headers_finished": lambda: events.append(("headers", b"")),
            "on_part_data": lambda data, start, end: events.append(("data", data[start:end])),
            "on_part_end": lambda: events.append(("end", b"")),
        },
    )
    part = _Part()
    parts = 0
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise invalid("body", f"not a multipart/form-data body: {str(exc)[:200]}") from None
            for event, data in events:
                if event == "begin":
                    parts += 1
                    if parts > MAX_PARTS:
                        raise invalid("body", f"more than {MAX_PARTS} form fields")
                    part = _Part()
                elif event in {"field", "value"}:
                    part.header_bytes += len(data)
                    if part.header_bytes > PART_HEADER_BYTES:
                        raise invalid("body", f"a form field's headers are over {PART_HEADER_BYTES} bytes")
                    if event == "field":
                        part.headers.append((data.decode("latin-1").lower(), ""))
                    elif part.headers:
                        part.headers[-1] = (part.headers[-1][0], part.headers[-1][1] + data.decode("latin-1"))
                elif event == "headers":
                    part.name, part.sink = _begin(part, store, bucket, file, fields, sinks)
                elif event == "data" and part.sink is not None:
                    await part.sink.write(data)
                elif event == "data":
                    part.value += data
                    if len(part.value) > TEXT_FIELD_BYTES:
                        raise invalid(part.name, f"{part.name}: over {TEXT_FIELD_BYTES} bytes")
                elif event == "end" and part.sink is None:
                    try:
                        fields[part.name] = part.value.decode()
                    except UnicodeDecodeError:
                        raise invalid(part.name, f"{part.name}: not UTF-8 text") from None
            events.clear()
        parser.finalize()
        return fields, (await sinks[0].finish() if sinks else None)
    except BaseException:
        for sink in sinks:  # refused, cut by the guard, or the client left: nothing of it stays
            await asyncio.shield(asyncio.to_thread(sink.abort))
        raise


def _begin(
    part: _Part, store: ObjectStore, bucket: str, file: FileField, fields: dict[str, str], sinks: list[_FileSink]
) -> tuple[str, _FileSink | None]:
    """A part's name once its headers are read, and the sink of its bytes if it is the file."""
    headers = dict(part.headers)
    disposition = headers.get("content-disposition", "")
    _, options = parse_options_header(disposition)
    name = options.get(b"name", b"").decode("utf-8", "replace")
    if not name:
        raise invalid("body", "a form field without a name")
    if name in fields or (name == file.name and sinks):
        raise invalid(name, f"{name}: given more than once")
    if name != file.name and b"filename" in options:
        raise invalid(file.name, f"{file.name}: Field required (a file came as {name[:100]!r})")
    if name != file.name:
        return name, None
    if b"filename" not in options:
        raise invalid(name, f"{name}: a file expected, got a text field")
    audio = file.audio and headers.get("content-type", "").strip().lower().startswith("audio/")
    sink = _FileSink(
        put=StreamedPut(store, bucket, Keys.incoming(uuid.uuid4().hex)),
        name=name,
        kind="audio" if audio else "image",
        max_bytes=file.max_bytes,
        max_pixels=file.max_pixels,
        error=file.error,
    )
    sinks.append(sink)
    return name, sink


def check_staged(store: ObjectStore, bucket: str, staged: StagedFile, field_name: str, limits: ReferenceLimits) -> str:
    """The staged file's checked type, every pixel or sample decoded from a temporary file (never the whole upload
    in memory); InvalidInput naming ``field_name`` when it is refused."""
    with tempfile.TemporaryDirectory(prefix="reelforge-upload-") as folder:
        path = store.get_file(bucket, staged.key, Path(folder) / "upload")
        if staged.kind == "audio":
            return check_audio_file(path, field_name, limits.max_seconds)
        return check_image_file(path, field_name, limits.max_pixels)


STAGED_FOR = timedelta(hours=1)  # an upload streams in seconds (at most REELFORGE_MAX_UPLOAD_BYTES): older is left over


def sweep_incoming(store: ObjectStore, bucket: str, older_than: timedelta = STAGED_FOR) -> int:
    """Remove staged uploads (and abort unfinished multipart uploads) under ``incoming/`` older than ``older_than``:
    what a gateway stopped mid-upload left; how many. Any replica may run it: none stages for that long."""
    return store.remove_older(bucket, Keys.incoming(""), datetime.now(UTC) - older_than)


async def sweep_incoming_every(store: ObjectStore, bucket: str, every_s: float, stop: asyncio.Event) -> None:
    """:func:`sweep_incoming` every ``every_s`` until ``stop`` (a gateway companion)."""
    while not stop.is_set():
        try:
            if swept := await asyncio.to_thread(sweep_incoming, store, bucket):
                log.info("uploads.swept", removed=swept)
        except Exception as exc:  # noqa: BLE001 - the next round tries again; it must never stop the gateway
            log.warning("uploads.sweep_deferred", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
