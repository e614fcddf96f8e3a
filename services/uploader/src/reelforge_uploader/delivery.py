"""Delivery by the media guide's rules: where each object goes, the HEAD gate, and its asset row.

- A video over ``REELFORGE_GITLAB_THRESHOLD_BYTES`` (1 MiB) is uploaded to the GitLab project
  (``REELFORGE_GITLAB_URL``/``_PROJECT``/``_TOKEN``, project uploads through python-gitlab); a
  video over ``REELFORGE_GITLAB_SPLIT_BYTES`` (50 MiB) is cut into numbered byte ranges
  (``NAME.part001``, ...) plus a manifest (``NAME.manifest.json``: sizes and SHA-256 of each part
  and of the whole); concatenating the parts in order gives the original bytes (:func:`join_parts`).
- Everything else (small videos, images, reports), and every object when no GitLab is configured
  (local mode), is copied to the S3 delivery bucket and named by its key alone: no presigned URL is
  made to be kept (rows and events carry ``s3://bucket/key`` and the key; the gateway signs a
  short-lived URL for an owner who asks, ``GET /v1/assets``, ``GET /v1/jobs/{id}/film``).
- Before an object counts as delivered, a HEAD request must answer 200 with the right length;
  otherwise the delivery is retried (TransientError). For GitLab it goes to the upload's URL; for
  S3 to a presigned HEAD URL of the object made for that request and dropped after it.
- Each delivered object (every part and the manifest too) becomes a ``media_assets`` row whose id
  is a function of job and name; a redelivered event finds the row, checks its URL and uploads nothing.
  A split upload retried after a partial failure uploads only the parts missing: a part whose row
  names the same source, size and SHA-256 and whose URL still answers HEAD with its size is kept.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from reelforge_shared.assets import AssetRegistry, AssetType, MediaAsset, Provider
from reelforge_shared.errors import PermanentError, TransientError
from reelforge_shared.storage import ObjectStore

_TYPES: dict[str, AssetType] = {
    ".mp4": "video",
    ".webm": "video",
    ".mov": "video",
    ".mkv": "video",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
}


def asset_type(name: str) -> AssetType:
    return _TYPES.get(Path(name).suffix.lower(), "report")


def _shown(url: str) -> str:
    """A URL for messages and logs: no query string (a presigned URL's signature stays out of logs)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def check_public_url(url: str, size: int, timeout_s: float = 30.0) -> None:
    """The upload gate: HEAD must answer 200, and the length, when given, must be the object's."""
    try:
        response = httpx.head(url, follow_redirects=True, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise TransientError(f"HEAD {_shown(url)} failed: {exc}") from exc
    if response.status_code != 200:
        raise TransientError(f"HEAD {_shown(url)} answered {response.status_code}, not 200")
    length = response.headers.get("content-length")
    if length is not None and int(length) != size:
        raise TransientError(f"HEAD {_shown(url)} reports {length} bytes, expected {size}")


class GitLabUploads:
    """Project uploads (``POST /projects/:id/uploads``) through python-gitlab."""

    def __init__(self, url: str, project: str, token: str, timeout_s: float = 120.0) -> None:
        import gitlab

        self.base = url.rstrip("/")
        self.project_ref = project
        self.gl = gitlab.Gitlab(self.base, private_token=token, timeout=timeout_s)
        self._project: Any = None

    @property
    def project(self) -> Any:
        """The project, read once on first use (its numeric id: python-gitlab double-encodes a path in upload URLs)."""
        if self._project is None:
            self._project = self.gl.projects.get(self.project_ref)
        return self._project

    def upload(self, filename: str, data: bytes) -> tuple[str, str]:
        """Upload; returns (storage path as GitLab reports it, public URL)."""
        import gitlab.exceptions
        import requests

        try:
            project = self.project
            info = project.upload(filename, filedata=data)
        except gitlab.exceptions.GitlabError as exc:
            if exc.response_code in {400, 401, 403, 404, 413}:
                refused = f"GitLab refused {filename!r} for {self.project_ref!r}: {exc.response_code} {exc.error_message}"
                raise PermanentError(refused) from exc
            raise TransientError(f"GitLab upload of {filename!r} failed: {exc.response_code} {exc.error_message}") from exc
        except requests.RequestException as exc:
            raise TransientError(f"GitLab upload of {filename!r} failed: {exc}") from exc
        # GitLab 17+ answers full_path (/-/project/ID/uploads/SECRET/NAME); older ones only url (/uploads/SECRET/NAME).
        path = info.get("full_path") or f"/{project.path_with_namespace}{info['url']}"
        return info["url"], f"{self.base}{path}"


@dataclass(frozen=True, slots=True)
class Delivered:
    asset: MediaAsset  # the object a client fetches: the file itself, or the manifest of its parts
    parts: int = 1

    @property
    def url(self) -> str | None:
        """GitLab's URL of the upload; None for S3 (named by its key, signed by the gateway when asked)."""
        return self.asset.public_url

    @property
    def provider(self) -> str:
        return self.asset.storage_provider


@dataclass(kw_only=True, slots=True)
class Delivery:
    store: ObjectStore
    work_bucket: str
    delivery_bucket: str
    registry: AssetRegistry
    gitlab: GitLabUploads | None = None
    gitlab_threshold_bytes: int = 1 << 20
    split_bytes: int = 50 << 20
    head_timeout_s: float = 30.0

    _in_flight: dict[tuple[str, str, str], threading.Event] = field(default_factory=dict, init=False, repr=False)
    _in_flight_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def deliver(self, job_id: str, key: str, name: str, metadata: dict[str, Any] | None = None) -> Delivered:
        """Deliver the work-bucket object ``key`` as ``name`` (a delivery-bucket key such as ``{job}/final.mp4``).

        One delivery of the same object at a time in this process: a second (``film.checked`` finding a crop that the
        ``film.deliverables_stored`` handler is copying) waits for the first and then finds its asset row, instead
        of copying the same bytes again beside it; when the first failed, the second delivers it itself.
        """
        flight = (job_id, key, name)
        while True:
            with self._in_flight_lock:
                running = self._in_flight.get(flight)
                if running is None:
                    self._in_flight[flight] = mine = threading.Event()
                    break
            running.wait()
        try:
            return self._deliver(job_id, key, name, metadata)
        finally:
            with self._in_flight_lock:
                del self._in_flight[flight]
            mine.set()

    def _deliver(self, job_id: str, key: str, name: str, metadata: dict[str, Any] | None) -> Delivered:
        size = self.store.size(self.work_bucket, key)
        if (done := self._already(job_id, name, key, size)) is not None:
            return done
        kind = asset_type(name)
        meta = {"job_id": job_id, "source_key": key, **(metadata or {})}
        if kind == "video" and self.gitlab is not None and size > self.gitlab_threshold_bytes:
            return self._to_gitlab(job_id, key, name, size, meta)
        self.store.copy(self.work_bucket, key, self.delivery_bucket, name)
        check_public_url(self.store.url(self.delivery_bucket, name, method="HEAD"), size, self.head_timeout_s)
        asset = self._record(job_id, name, kind, "s3", f"s3://{self.delivery_bucket}/{name}", None, size, meta)
        return Delivered(asset)

    def _already(self, job_id: str, name: str, key: str, size: int) -> Delivered | None:
        """This very source already delivered under ``name`` and still answering (a re-rendered segment is not)."""
        asset = self.registry.get(job_id, name) or self.registry.get(job_id, f"{name}.manifest.json")
        if asset is None or asset.metadata.get("source_key") != key or asset.metadata.get("size", asset.file_size) != size:
            return None
        head_url = asset.public_url or ""
        if asset.storage_provider == "s3":
            bucket, key = asset.storage_url.removeprefix("s3://").split("/", 1)
            head_url = self.store.url(bucket, key, method="HEAD")
        try:
            check_public_url(head_url, asset.file_size, self.head_timeout_s)
        except TransientError:
            return None  # gone or expired: deliver again
        return Delivered(asset, int(asset.metadata.get("parts", 1)))

    def _part_landed(self, job_id: str, part_name: str, key: str, digest: str, size: int) -> dict[str, Any] | None:
        """A part an earlier try delivered: its row names these very bytes (source, SHA-256, size) and its HEAD answers."""
        asset = self.registry.get(job_id, part_name)
        if asset is None or asset.public_url is None or asset.file_size != size:
            return None
        if asset.metadata.get("source_key") != key or asset.metadata.get("sha256") != digest:
            return None
        try:
            check_public_url(asset.public_url, size, self.head_timeout_s)
        except TransientError:
            return None  # gone from GitLab since: upload it again
        index = int(asset.metadata["part"])
        return {"index": index, "name": part_name, "size": size, "sha256": digest, "url": asset.public_url}

    def _to_gitlab(self, job_id: str, key: str, name: str, size: int, meta: dict[str, Any]) -> Delivered:
        if self.gitlab is None:
            raise PermanentError("no GitLab configured")
        upload_name = name.replace("/", "_")
        with tempfile.TemporaryDirectory(prefix="reelforge-deliver-") as tmp:
            path = self.store.get_file(self.work_bucket, key, Path(tmp) / upload_name)
            digest = _sha256(path)
            if size <= self.split_bytes:
                storage, url = self.gitlab.upload(upload_name, path.read_bytes())
                check_public_url(url, size, self.head_timeout_s)
                return Delivered(self._record(job_id, name, "video", "gitlab", storage, url, size, meta | {"sha256": digest}))
            parts = []
            with path.open("rb") as f:
                for number, chunk in enumerate(iter(lambda: f.read(self.split_bytes), b""), start=1):
                    part_name = f"{name}.part{number:03d}"
                    part_digest = hashlib.sha256(chunk).hexdigest()
                    if (landed := self._part_landed(job_id, part_name, key, part_digest, len(chunk))) is not None:
                        parts.append(landed)  # an earlier try uploaded and checked it, and it still answers
                        continue
                    storage, url = self.gitlab.upload(part_name.replace("/", "_"), chunk)
                    check_public_url(url, len(chunk), self.head_timeout_s)
                    self._record(
                        job_id,
                        part_name,
                        "video_part",
                        "gitlab",
                        storage,
                        url,
                        len(chunk),
                        meta | {"part": number, "of": name, "sha256": part_digest},
                    )
                    parts.append({"index": number, "name": part_name, "size": len(chunk), "sha256": part_digest, "url": url})
        manifest = {
            "name": name,
            "size": size,
            "sha256": digest,
            "content_type": "video/mp4",
            "parts": parts,
            "join": "concatenate the parts in index order (cat NAME.part001 NAME.part002 ... > NAME); check size and sha256",
        }
        body = json.dumps(manifest, indent=2).encode()
        manifest_name = f"{name}.manifest.json"
        storage, url = self.gitlab.upload(manifest_name.replace("/", "_"), body)
        check_public_url(url, len(body), self.head_timeout_s)
        asset = self._record(
            job_id,
            manifest_name,
            "manifest",
            "gitlab",
            storage,
            url,
            len(body),
            meta | {"of": name, "parts": len(parts), "size": size, "sha256": digest},
        )
        return Delivered(asset, len(parts))

    def _record(
        self,
        job_id: str,
        name: str,
        kind: AssetType,
        provider: Provider,
        storage_url: str,
        public_url: str | None,
        size: int,
        meta: dict[str, Any],
    ) -> MediaAsset:
        asset = MediaAsset(
            id=MediaAsset.id_for(job_id, name),
            name=name,
            type=kind,
            storage_provider=provider,
            storage_url=storage_url,
            public_url=public_url,
            file_size=size,
            metadata=meta,
        )
        self.registry.put(asset)
        return asset


def join_parts(manifest: dict[str, Any], fetch: Callable[[str], bytes]) -> bytes:
    """The original bytes from a manifest's parts; every part and the whole checked against their SHA-256."""
    chunks = []
    for part in sorted(manifest["parts"], key=lambda p: p["index"]):
        data = fetch(part["url"])
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise ValueError(f"part {part['index']} of {manifest['name']} does not match its sha256")
        chunks.append(data)
    whole = b"".join(chunks)
    if len(whole) != manifest["size"] or hashlib.sha256(whole).hexdigest() != manifest["sha256"]:
        raise ValueError(f"joined {manifest['name']} does not match the manifest's size and sha256")
    return whole


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
