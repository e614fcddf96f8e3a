"""Media a storyboard refers to, checked before anything keeps it: fetched references and uploads alike.

A storyboard names media (a reference image, a logo, music, a segment's audio) only as an upload or
an ``https`` URL that the gateway fetches once at submission, through the egress guard, and stores
under the job. This module is the checking half:

- :func:`fetch_reference` fetches one URL through an :class:`~reelforge_shared.egress.Egress` made by
  :func:`reference_egress` (https only, redirects re-checked, a byte cap and one deadline), refuses
  a ``Content-Type`` that is not the kind asked for, then checks the bytes;
- :func:`check_image` opens only PNG, JPEG and WebP, refuses more than ``max_pixels`` before decoding
  (PIL's decompression-bomb guard is an error here, never a warning) and decodes every pixel;
- :func:`check_audio` opens only common audio containers and refuses more than ``max_seconds``.

- :func:`store_media` is submission's whole step: every media field of a storyboard that is an
  ``https`` URL fetched, checked and stored under the job (``Keys.job_input``) and renamed to its key;
  the job's own keys kept; anything else refused naming the field (uploads are renamed to the job's
  keys by the caller first).

Every refusal is an :class:`~reelforge_shared.errors.InvalidInput` naming the field, the value and
the limit; decoding runs in a worker thread so the gateway's event loop keeps serving.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio.to_thread
import av
from PIL import Image, UnidentifiedImageError

from reelforge_shared.egress import Egress, EgressFailed, EgressPolicy
from reelforge_shared.errors import InvalidInput
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, parse_storyboard

Kind = Literal["image", "audio"]

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
AUDIO_FORMATS = {  # PyAV's container names -> the type stored
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4",
}


@dataclass(kw_only=True, frozen=True)
class ReferenceLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_seconds: float = 600.0


@dataclass(kw_only=True, frozen=True)
class Reference:
    data: bytes
    content_type: str  # the checked type, not the one the server claimed
    kind: Kind


EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "audio/wav": ".wav", "audio/mpeg": ".mp3"}
EXTENSIONS |= {"audio/flac": ".flac", "audio/ogg": ".ogg", "audio/mp4": ".m4a"}


def media_fields(data: dict) -> list[tuple[dict, str, str, Kind]]:
    """(holder, key, field, kind) of every media reference in a storyboard dumped as JSON (``model_dump(mode="json")``)."""
    return [
        (data["audio"], "music", "audio.music", "audio"),
        (data["deliverables"], "logo", "deliverables.logo", "image"),
        *((seg, "audio", f"segments[{i}].audio", "audio") for i, seg in enumerate(data["segments"])),
        *((c, "reference_image", f"characters.{name}.reference_image", "image") for name, c in data["characters"].items()),
    ]


def stored_name(field: str, content_type: str) -> str:
    """The file name a field's medium is stored under in the job's inputs (``characters.hero.reference_image.png``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", field).strip("-") + EXTENSIONS.get(content_type, "")


async def store_media(
    board: Storyboard, *, job_id: str, egress: Egress, store: ObjectStore, bucket: str, limits: ReferenceLimits
) -> Storyboard:
    """``board`` with every https media reference fetched once, checked, stored under the job and named by its key.

    The job's own keys stay; anything else (a path, http, another job's key, a URL the guard refuses,
    a body that is not the image or audio its field wants) is InvalidInput naming the field.
    """
    data = board.model_dump(mode="json")
    for holder, key, field, kind in media_fields(data):
        ref = holder.get(key)
        if not ref or Keys.owned(job_id, ref):
            continue
        if not ref.startswith("https://"):
            raise InvalidInput(f"{field}: {ref!r} is neither an upload of this job nor an https URL")
        fetched = await fetch_reference(egress, ref, kind=kind, field=field, limits=limits)
        stored = Keys.job_input(job_id, stored_name(field, fetched.content_type))
        await anyio.to_thread.run_sync(store.put_bytes, bucket, stored, fetched.data, fetched.content_type)
        holder[key] = stored
    return parse_storyboard(data)


def reference_egress(*, allow_private: bool, deadline_s: float, limits: ReferenceLimits) -> Egress:
    """The guard reference fetches go through: https only (http too when ``allow_private``: tests, local mode)."""
    schemes = frozenset({"https", "http"} if allow_private else {"https"})
    policy = EgressPolicy(
        allow_private=allow_private, schemes=schemes, deadline_s=deadline_s, max_bytes=limits.max_bytes, max_redirects=3
    )
    return Egress(policy=policy)


async def fetch_reference(egress: Egress, url: str, *, kind: Kind, field: str, limits: ReferenceLimits) -> Reference:
    """GET ``url`` once through ``egress`` and return its bytes checked as ``kind``; InvalidInput names ``field``."""
    try:
        response = await egress.request("GET", url, field=field)
    except EgressFailed as exc:  # fetched once, at submission: a reference that cannot be fetched now is refused
        raise InvalidInput(str(exc)) from exc
    if response.status_code != 200:
        raise InvalidInput(f"{field}: {url!r} answered {response.status_code}, not 200")
    claimed = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not claimed.startswith(f"{kind}/"):
        raise InvalidInput(f"{field}: {url!r} is {claimed or 'untyped'}, not {kind}/*")
    return await check_reference(response.content, kind=kind, field=field, limits=limits)


async def check_reference(data: bytes, *, kind: Kind, field: str, limits: ReferenceLimits) -> Reference:
    """``data`` checked as ``kind`` in a worker thread (decoding is CPU work)."""
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"{field}: {len(data)} bytes, over the {limits.max_bytes}-byte cap")
    if kind == "image":
        content_type = await anyio.to_thread.run_sync(check_image, data, field, limits.max_pixels)
    else:
        content_type = await anyio.to_thread.run_sync(check_audio, data, field, limits.max_seconds)
    return Reference(data=data, content_type=content_type, kind=kind)


def check_image(data: bytes, field: str, max_pixels: int) -> str:
    """The image's type, after opening only PNG/JPEG/WebP, checking its size and decoding every pixel."""
    return IMAGE_FORMATS[_decoded(data, field, max_pixels).format or ""]


_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG; WebP is RIFF....WEBP
_NOT_YET = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)


def image_header(head: bytes, field: str, max_pixels: int, *, last_look: bool) -> tuple[str, int, int] | None:
    """(type, width, height) read from an image's first bytes, before the rest has come; None while more are needed.

    InvalidInput as soon as the bytes cannot begin a PNG, JPEG or WebP, or the size the header declares is over
    ``max_pixels`` (a decompression bomb is refused from its header, before its data is read). ``last_look``: no
    more bytes will be looked at (``head`` is the whole file, or as far as a header may reach).
    """
    if len(head) < 12 and not last_look:
        return None
    if not (head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")):
        raise InvalidInput(f"{field}: not a PNG, JPEG or WebP image (it begins {head[:12]!r})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(head), formats=list(IMAGE_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(f"{field}: decompression bomb refused, over the {max_pixels}-pixel cap ({exc})") from None
    except _NOT_YET as exc:
        if last_look:
            raise InvalidInput(f"{field}: no PNG, JPEG or WebP header in its first {len(head)} bytes ({exc})") from None
        return None
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidInput(f"{field}: {width}x{height} image, over the {max_pixels}-pixel cap")
    return IMAGE_FORMATS[image.format or ""], width, height


def check_image_file(path: Path, field: str, max_pixels: int) -> str:
    """:func:`check_image` of a file (an upload that streamed to disk or storage, never held whole in memory)."""
    return IMAGE_FORMATS[_decoded(path, field, max_pixels).format or ""]


def open_image(data: bytes, field: str, max_pixels: int) -> Image.Image:
    """The decoded image, RGB; InvalidInput for anything that is not a sound PNG/JPEG/WebP within ``max_pixels``."""
    return _decoded(data, field, max_pixels).convert("RGB")


def _decoded(data: bytes | Path, field: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL's own bomb guard: an error, never a warning
            image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data, formats=list(IMAGE_FORMATS))
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidInput(f"{field}: {width}x{height} image, over the {max_pixels}-pixel cap")
            image.load()  # every pixel decoded: a truncated or corrupt file fails here, not in a worker later
            return image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{field}: not a PNG, JPEG or WebP image that decodes ({type(exc).__name__}: {exc})") from None
    except Image.DecompressionBombWarning as exc:
        raise InvalidInput(f"{field}: decompression bomb refused ({exc})") from None


def check_audio_file(path: Path, field: str, max_seconds: float) -> str:
    """:func:`check_audio` of a file (an upload that streamed to storage, never held whole in memory)."""
    return check_audio(path, field, max_seconds)


def check_audio(data: bytes | Path, field: str, max_seconds: float) -> str:
    """The audio's type, after opening only common audio containers and checking there is audio, within ``max_seconds``."""
    try:
        # Only audio demuxers, nothing that opens other files or URLs by the names inside it (HLS, concat listings).
        guard = {"format_whitelist": "wav,mp3,flac,ogg,mov", "protocol_whitelist": "file,pipe"}
        with av.open(io.BytesIO(data) if isinstance(data, bytes) else str(data), mode="r", options=guard) as container:
            name = container.format.name
            if name not in AUDIO_FORMATS or not container.streams.audio:
                raise InvalidInput(f"{field}: {name} without audio is not WAV, MP3, FLAC, Ogg or M4A audio")
            seconds = float(container.duration / av.time_base) if container.duration else 0.0
            if seconds > max_seconds:
                raise InvalidInput(f"{field}: {seconds:.1f} s of audio, over the {max_seconds} s cap")
            for _ in container.decode(audio=0):  # decodable to the end, as the encoder will need it
                pass
            return AUDIO_FORMATS[name]
    except av.FFmpegError as exc:
        raise InvalidInput(f"{field}: not audio that decodes ({type(exc).__name__}: {exc})") from None
