"""S3 object storage through the minio SDK, and the deterministic keys every service agrees on.

Keys are a function of the job and segment only, so a redelivered event finds the output of an
earlier delivery and skips the work.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.datatypes import Part
from minio.error import S3Error, ServerError
from urllib3.exceptions import HTTPError

from reelforge_shared.errors import DependencyDown, InvalidInput, PermanentError
from reelforge_shared.settings import CommonSettings


class Keys:
    """Object keys in the work bucket."""

    @staticmethod
    def job(job_id: str) -> str:
        return f"jobs/{job_id}"

    @staticmethod
    def storyboard(job_id: str) -> str:
        return f"jobs/{job_id}/storyboard.json"

    @staticmethod
    def segment(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        """A segment's folder; a regeneration (attempt > 1) renders beside the first attempt, never over it, and a
        take other than the first (``take`` > 0, :mod:`reelforge_shared.takes`) beside take 0 of its attempt."""
        base = f"jobs/{job_id}/segments/{index:03d}"
        base = base if attempt == 1 else f"{base}/attempt-{attempt}"
        return base if take == 0 else f"{base}/take-{take}"

    @staticmethod
    def frames(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        return f"{Keys.segment(job_id, index, attempt, take)}/frames/"

    @staticmethod
    def frame(job_id: str, index: int, frame: int, attempt: int = 1, take: int = 0) -> str:
        return f"{Keys.frames(job_id, index, attempt, take)}{frame:04d}.png"

    @staticmethod
    def segment_video(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        return f"{Keys.segment(job_id, index, attempt, take)}/segment.mp4"

    @staticmethod
    def segment_audio(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        """The sound a model made with the segment's frames (LTX-2), 16-bit WAV; the encoder muxes it into the segment."""
        return f"{Keys.segment(job_id, index, attempt, take)}/audio.wav"

    @staticmethod
    def segment_sound(video_key: str) -> str:
        """A segment's whole sound (its clip's audio, narration or audio file; levelled, exactly its length) beside its
        video, as FLAC: the film lays these end to end under the video it joins by copy. Absent: a silent segment."""
        return f"{video_key.removesuffix('.mp4')}.sound.flac"

    @staticmethod
    def segment_handles(video_key: str) -> str:
        """A segment's whole render with its handles (``output.handles_s``) beside its video, which is the middle the
        film uses: what an editor's timeline references, the trim as its source range. Absent: no handles."""
        return f"{video_key.removesuffix('.mp4')}.handles.mp4"

    @staticmethod
    def segment_thumbnail(video_key: str) -> str:
        """A segment's still (JPEG, its middle frame at the delivery size) beside its video, made as the segment is encoded."""
        return f"{video_key.removesuffix('.mp4')}.thumbnail.jpg"

    @staticmethod
    def segment_piece(video_key: str, j: int, crop: str | None = None) -> str:
        """A segment's ``j``-th piece (of a crop: ``9x16``, ``1x1``) beside its video: the film joins pieces by copy."""
        return f"{video_key.removesuffix('.mp4')}{'_' + crop if crop else ''}.part{j}.mp4"

    @staticmethod
    def transition_span(
        incoming_video_key: str, outgoing_attempt: int, outgoing_take: int, recipe: str, crop: str | None = None
    ) -> str:
        """The transition into a segment from the one before it (that segment's ``outgoing_attempt`` and take), beside the
        incoming segment's video: encoded as soon as both segments are (``recipe``: a digest of how, so a changed one is new)."""
        take = f"t{outgoing_take}" if outgoing_take else ""
        name = f"{'_' + crop if crop else ''}.span-from-{outgoing_attempt}{take}-{recipe}.mp4"
        return f"{incoming_video_key.removesuffix('.mp4')}{name}"

    @staticmethod
    def segment_video_attempts(job_id: str, index: int, keys: list[str]) -> list[int]:
        """The attempts of segment ``index`` whose video is among ``keys`` (a listing of its folder), in order."""
        base, video = Keys.segment(job_id, index), Keys.segment_video(job_id, index).rsplit("/", 1)[1]
        found = [1] if Keys.segment_video(job_id, index) in keys else []
        for key in keys:
            middle = key.removeprefix(f"{base}/attempt-").removesuffix(f"/{video}")
            if middle != key and middle.isdigit() and Keys.segment_video(job_id, index, int(middle)) == key:
                found.append(int(middle))
        return sorted(found)

    @staticmethod
    def segment_timings(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        """Seconds the encoder took for a segment (and the render's, when the generator reports them), for the report."""
        return f"{Keys.segment(job_id, index, attempt, take)}/timings.json"

    @staticmethod
    def segment_film_stats(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        """What film QA needs of a segment (colour sample, thumbnails), kept by segment QA."""
        return f"{Keys.segment(job_id, index, attempt, take)}/qa-film.npz"

    @staticmethod
    def segment_qa(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        return f"{Keys.segment(job_id, index, attempt, take)}/qa.json"

    @staticmethod
    def segment_checked(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        """What segment QA passed on for an attempt (the model that rendered it, its length), for film QA's report.

        Which attempt was delivered is the job store's record alone (the film events carry it), never an object.
        """
        return f"{Keys.segment(job_id, index, attempt, take)}/checked.json"

    @staticmethod
    def continuity_reference(job_id: str, index: int, attempt: int) -> str:
        """The frame (of the best-matching segment) that steers a continuity re-render; ``attempt``: the new one."""
        return f"{Keys.segment(job_id, index, attempt)}/reference.png"

    @staticmethod
    def segment_generation(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        """What the generator did for an attempt: the prompt as the model got it, token counts, render figures."""
        return f"{Keys.segment(job_id, index, attempt, take)}/generation.json"

    @staticmethod
    def render_state(job_id: str, index: int, attempt: int = 1, take: int = 0) -> str:
        """The generator's record of the size it settled on after running out of memory."""
        return f"{Keys.segment(job_id, index, attempt, take)}/render.json"

    @staticmethod
    def waiting_request(job_id: str, index: int) -> str:
        """A segment's request that waits for the segment before it (``start_from: previous``, reelforge_shared.chain)."""
        return f"jobs/{job_id}/waiting/{index:03d}.json"

    @staticmethod
    def waiting_released(job_id: str, index: int) -> str:
        """Which attempt of the segment before let the waiting request of segment ``index`` go last (reelforge_shared.chain)."""
        return f"jobs/{job_id}/waiting/{index:03d}.released.json"

    @staticmethod
    def storyboard_version(job_id: str, version: int) -> str:
        """The storyboard film version ``version`` was made from, kept when a new one replaces it (PUT .../storyboard)."""
        return f"jobs/{job_id}/storyboards/v{version}.json"

    @staticmethod
    def shot_plan(job_id: str) -> str:
        """Whose shots a job's segments are and whether they may be reused (written at submission; read by segment QA)."""
        return f"jobs/{job_id}/shots.json"

    @staticmethod
    def shot(owner: str, key: str) -> str:
        """A shot in its owner's store (``owner``: :func:`reelforge_shared.shots.owner_folder`, never a path)."""
        return f"shots/{owner}/{key}/"

    @staticmethod
    def cast_sheet(owner: str, key: str) -> str:
        """A cast sheet image in its owner's shot store (rendered once, reused by every job of that owner)."""
        return f"{Keys.shot(owner, key)}sheet.png"

    @staticmethod
    def job_cast_sheet(job_id: str, key: str) -> str:
        """A cast sheet image as a job's segments and its report use it (a copy of the owner's)."""
        return f"jobs/{job_id}/cast/{key}.png"

    @staticmethod
    def shot_record(owner: str, key: str) -> str:
        """The stored shot: where the frames of a render of ``key`` that passed its gates are."""
        return f"{Keys.shot(owner, key)}shot.json"

    @staticmethod
    def render_profile(model: str) -> str:
        """The generator's profile of a model (revision, picture settings): what a shot key needs beside the spec."""
        return f"generator/profiles/{hashlib.sha256(model.encode()).hexdigest()[:32]}.json"

    @staticmethod
    def input_image(job_id: str, extension: str = ".png") -> str:
        """The image an image-to-video request brought (checked: type, pixel count, every pixel decoded), as it came."""
        return f"jobs/{job_id}/input/image{extension}"

    @staticmethod
    def incoming(name: str) -> str:
        """An upload while it streams in, before it is checked (``name``: random); moved under its job, or removed."""
        return f"incoming/{name}"

    @staticmethod
    def job_input(job_id: str, name: str) -> str:
        """Media the job brought (an upload or a reference the gateway fetched), as the stored storyboard names it."""
        return f"jobs/{job_id}/input/{name}"

    @staticmethod
    def uploads(owner: str) -> str:
        """The folder of one owner's uploads (``POST /v1/uploads``); a storyboard of that owner may name its keys."""
        return "uploads/" + re.sub(r"[^A-Za-z0-9_-]+", "_", owner) + "/"

    @staticmethod
    def upload(owner: str, name: str) -> str:
        return Keys.uploads(owner) + name

    @staticmethod
    def owned(job_id: str, ref: str) -> bool:
        """Whether ``ref`` is a plain key under the job's own folder: no other job's, no ``..``, no empty segment."""
        prefix = Keys.job(job_id) + "/"
        parts = ref[len(prefix) :].split("/")
        plain = all(part not in {"", ".", ".."} for part in parts) and not any(c in ref for c in "\\\0\n\r")
        return ref.startswith(prefix) and plain

    @staticmethod
    def asset(job_id: str, asset_id: object) -> str:
        """A media_assets row kept as JSON when no database is configured."""
        return f"jobs/{job_id}/assets/{asset_id}.json"

    @staticmethod
    def assets(job_id: str) -> str:
        return f"jobs/{job_id}/assets/"

    @staticmethod
    def film_dir(job_id: str, version: int = 1) -> str:
        """Where a film version and its deliverables and reports live: version 1 in the job's folder, later ones in ``v{n}/``."""
        return f"jobs/{job_id}" if version == 1 else f"jobs/{job_id}/v{version}"

    @staticmethod
    def film(job_id: str, version: int = 1) -> str:
        return f"{Keys.film_dir(job_id, version)}/final.mp4"

    @staticmethod
    def film_meta(job_id: str, version: int = 1) -> str:
        """The encoder's metadata of the film, written last: its presence means the film is complete."""
        return f"{Keys.film(job_id, version)}.json"

    @staticmethod
    def deliverable(job_id: str, name: str, version: int = 1) -> str:
        """A deliverable beside the film: ``jobs/J/final_9x16.mp4``, ``jobs/J/final_thumbnail.jpg``."""
        return f"{Keys.film_dir(job_id, version)}/{deliverable_file(name)}"

    @staticmethod
    def derived(job_id: str, version: int, rendition_id: str, suffix: str) -> str:
        """A derived rendition of a film version (the API's speed, audio, stills, ...): ``jobs/J/derived/ID.mp4``."""
        return f"{Keys.film_dir(job_id, version)}/derived/{rendition_id}{suffix}"

    @staticmethod
    def derived_meta(job_id: str, version: int, rendition_id: str) -> str:
        """The encoder's record of a derived rendition (its key, or why it could not be made), written last."""
        return Keys.derived(job_id, version, rendition_id, ".json")

    @staticmethod
    def cut_entry(job_id: str, version: int, position: int) -> str:
        """A re-cut film version's ``position``-th entry (1-based, film order) as the encoder joined it, transitions aside:
        what film QA checks in its place."""
        return f"{Keys.film_dir(job_id, version)}/cut/{position:03d}.mp4"

    @staticmethod
    def report(job_id: str, version: int = 1) -> str:
        return f"{Keys.film_dir(job_id, version)}/report.json"

    @staticmethod
    def report_html(job_id: str, version: int = 1) -> str:
        return f"{Keys.film_dir(job_id, version)}/report.html"


def deliverable_file(name: str) -> str:
    return f"final_{name}{'.jpg' if name == 'thumbnail' else '.mp4'}"


class DeliveryKeys:
    """Object keys in the delivery bucket (what downstream users fetch)."""

    @staticmethod
    def segment(job_id: str, index: int) -> str:
        return f"{job_id}/segments/{index:03d}.mp4"

    @staticmethod
    def film_dir(job_id: str, version: int = 1) -> str:
        return job_id if version == 1 else f"{job_id}/v{version}"

    @staticmethod
    def film(job_id: str, version: int = 1) -> str:
        return f"{DeliveryKeys.film_dir(job_id, version)}/final.mp4"

    @staticmethod
    def report(job_id: str, version: int = 1) -> str:
        return f"{DeliveryKeys.film_dir(job_id, version)}/report.json"

    @staticmethod
    def report_html(job_id: str, version: int = 1) -> str:
        return f"{DeliveryKeys.film_dir(job_id, version)}/report.html"

    @staticmethod
    def deliverable(job_id: str, name: str, version: int = 1) -> str:
        return f"{DeliveryKeys.film_dir(job_id, version)}/{deliverable_file(name)}"


_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}
_UNAVAILABLE = {"ServiceUnavailable", "SlowDown", "RequestTimeout"}


@dataclass(slots=True)
class ObjectStore:
    """A thin, typed face on one S3 endpoint. Network trouble surfaces as DependencyDown("s3")."""

    client: Minio

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ObjectStore:
        if not settings.s3_endpoint:
            raise ValueError("REELFORGE_S3_ENDPOINT is not set")
        endpoint = settings.s3_endpoint.removeprefix("http://").removeprefix("https://")
        http = urllib3.PoolManager(  # minio's default waits 5 minutes to connect: an outage would look like a hang
            timeout=urllib3.util.Timeout(connect=10, read=300),
            maxsize=10,
            # REELFORGE_S3_CA_BUNDLE: an S3 server whose certificate a private CA signs; else minio's own defaults.
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.s3_ca_bundle or os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        client = Minio(
            endpoint,
            http_client=http,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
        return cls(client)

    def ensure_bucket(self, bucket: str) -> None:
        """Make the bucket if it is missing. A service's own identity may not see another's bucket (fine) nor make one."""
        with _transient("make bucket", bucket):
            try:
                exists = self.client.bucket_exists(bucket)
            except S3Error as exc:
                if exc.code == "AccessDenied":  # not this service's bucket: it never touches it
                    return
                raise
            if not exists:
                try:
                    self.client.make_bucket(bucket)
                except S3Error as exc:
                    if exc.code == "AccessDenied":
                        raise PermanentError(
                            f"bucket {bucket!r} does not exist and this S3 identity may not create it; "
                            "create it with the admin identity (docs/security.md)"
                        ) from exc
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        with _transient("put", key):
            self.client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def put_json(self, bucket: str, key: str, value: Any) -> None:
        self.put_bytes(bucket, key, json.dumps(value, indent=2, default=str).encode(), "application/json")

    def put_file(self, bucket: str, key: str, path: Path, content_type: str = "application/octet-stream") -> str:
        """Store the file; returns the object's ETag (what ``etag`` answers while these bytes are stored)."""
        with _transient("put", key):
            return self.client.fput_object(bucket, key, str(path), content_type=content_type).etag or ""

    def get_bytes(self, bucket: str, key: str) -> bytes:
        with _transient("get", key):
            response = self.client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.get_bytes(bucket, key))

    def find_json(self, bucket: str, key: str) -> Any | None:
        """The stored JSON value, None when the object is missing: one read, so an object another writer removes between
        a check and the read is missing, not an error."""
        try:
            return self.get_json(bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise

    def get_file(self, bucket: str, key: str, path: Path) -> Path:
        with _transient("get", key):
            self.client.fget_object(bucket, key, str(path))
        return path

    def get_file_reading(self, bucket: str, key: str, path: Path, reader: Callable[[io.RawIOBase], T]) -> tuple[Path, T]:
        """Download the object to ``path`` while ``reader`` reads it: ``reader`` gets the bytes as they arrive (a seekable
        file; a seek ahead waits for the bytes), so work on the object (a demux) is done during the download instead of
        after it. Returns the path, whole, and what ``reader`` returned."""
        with _transient("get", key):
            response = self.client.get_object(bucket, key)
            try:
                with path.open("w+b") as file:
                    arriving = ArrivingFile(response, int(response.headers.get("content-length") or 0), file)
                    value = reader(arriving)
                    arriving.finish()
            finally:
                response.close()
                response.release_conn()
        return path, value

    def exists(self, bucket: str, key: str) -> bool:
        try:
            with _transient("stat", key):
                self.client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise
        return True

    def remove(self, bucket: str, key: str) -> None:
        """Delete one object (a missing one is no error: S3 deletes idempotently)."""
        with _transient("delete", key):
            self.client.remove_object(bucket, key)

    def etag(self, bucket: str, key: str) -> str | None:
        """The object's ETag, None when it is missing (one HEAD)."""
        try:
            with _transient("stat", key):
                return self.client.stat_object(bucket, key).etag or ""
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise

    def size(self, bucket: str, key: str) -> int:
        with _transient("stat", key):
            return self.client.stat_object(bucket, key).size or 0

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        with _transient("list", prefix):
            return sorted(o.object_name for o in self.client.list_objects(bucket, prefix=prefix, recursive=True))

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, content_type: str | None = None) -> None:
        """A server-side copy; ``content_type``: the copy's own (else the source's)."""
        with _transient("copy", src_key):
            if content_type is None:
                self.client.copy_object(dst_bucket, dst_key, CopySource(src_bucket, src_key))
            else:
                metadata: dict[str, str | list[str] | tuple[str]] = {"Content-Type": content_type}
                source = CopySource(src_bucket, src_key)
                self.client.copy_object(dst_bucket, dst_key, source, metadata=metadata, metadata_directive=REPLACE)

    def remove_older(self, bucket: str, prefix: str, before: datetime) -> int:
        """Remove the objects under ``prefix`` last written before ``before``, and abort the multipart uploads under
        it begun before then (their parts go with them); how many of both."""
        with _transient("list", prefix):
            old = [
                o.object_name
                for o in self.client.list_objects(bucket, prefix=prefix, recursive=True)
                if o.object_name and o.last_modified is not None and o.last_modified < before
            ]
            uploads = self.client._list_multipart_uploads(bucket, prefix=prefix).uploads  # no public call for it
        for key in old:
            self.remove(bucket, key)
        begun = [u for u in uploads if u.upload_id and u.initiated_time is not None and u.initiated_time < before]
        for upload in begun:
            with _transient("abort", upload.object_name):
                self.client._abort_multipart_upload(bucket, upload.object_name, upload.upload_id or "")
        return len(old) + len(begun)

    def unfinished_uploads(self, bucket: str, prefix: str = "") -> list[str]:
        """The keys of multipart uploads begun and neither completed nor aborted (their parts take space, unlisted)."""
        with _transient("list uploads", prefix):
            found = self.client._list_multipart_uploads(bucket, prefix=prefix)  # minio has no public call for it
        return sorted(upload.object_name for upload in found.uploads if upload.object_name)

    def url(self, bucket: str, key: str, expires: timedelta = timedelta(days=7), method: str = "GET") -> str:
        """A presigned URL (the longest S3 allows is 7 days); the signature binds the method (GET or HEAD)."""
        return self.client.get_presigned_url(method, bucket, key, expires=expires)


T = TypeVar("T")


class ArrivingFile(io.RawIOBase):
    """A download read as it arrives: every byte read from ``source`` is written to ``file`` too; what was read before
    (a seek back) is read from ``file``, a seek ahead reads on from ``source``. ``finish`` takes the rest."""

    CHUNK = 1 << 20

    def __init__(self, source: Any, size: int, file: IO[bytes]) -> None:
        super().__init__()
        self.source, self.size, self.file = source, size, file
        self.position = self.arrived = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def _arrive(self, upto: int) -> None:
        while self.arrived < upto:
            chunk = self.source.read(max(self.CHUNK, upto - self.arrived))
            if not chunk:
                raise ConnectionError(f"the download ended at {self.arrived} of {self.size} bytes")
            self.file.seek(self.arrived)
            self.file.write(chunk)
            self.arrived += len(chunk)

    def read(self, size: int = -1) -> bytes:
        end = self.size if size < 0 else min(self.size, self.position + size)
        if end <= self.position:
            return b""
        if self.position == self.arrived:  # reading on as it arrives (a demux): handed over as written, not read back
            chunk = self.source.read(end - self.position)
            if not chunk:
                raise ConnectionError(f"the download ended at {self.arrived} of {self.size} bytes")
            self.file.seek(self.arrived)
            self.file.write(chunk)
            self.arrived = self.position = self.arrived + len(chunk)
            return bytes(chunk)
        self._arrive(end)
        self.file.seek(self.position)
        data = self.file.read(end - self.position)
        self.position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> None:
        """The rest of the object, to the file."""
        self._arrive(self.size)
        self.file.flush()


PART_BYTES = 5 * 1024 * 1024  # S3's least part size (every part but the last)


@dataclass(slots=True)
class StreamedPut:
    """One object written as its bytes arrive, never held whole: parts of at least ``PART_BYTES`` (``part``) go to an S3
    multipart upload as they are handed over, then the rest (``finish``). An object smaller than one part is a single
    PUT at ``finish``: nothing is on the server before. ``abort`` removes whatever was written (parts, object).

    minio's ``put_object`` streams too, but holds the last part until it knows it is the last and cannot be stopped
    from outside; these are the calls it is made of.
    """

    store: ObjectStore
    bucket: str
    key: str
    content_type: str = "application/octet-stream"
    upload_id: str | None = None
    parts: list[Part] = field(default_factory=list)

    def part(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) < PART_BYTES:
            raise ValueError(f"a part before the last has at least {PART_BYTES} bytes (got {len(data)})")
        with _transient("put part", self.key):
            if self.upload_id is None:
                headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": self.content_type}
                self.upload_id = self.store.client._create_multipart_upload(self.bucket, self.key, headers)
            self._send(data, self.upload_id)

    def finish(self, rest: bytes | bytearray | memoryview) -> None:
        """The last bytes, and the object complete."""
        if self.upload_id is None:
            self.store.put_bytes(self.bucket, self.key, bytes(rest), self.content_type)
            return
        with _transient("put part", self.key):
            if rest:
                self._send(rest, self.upload_id)
            self.store.client._complete_multipart_upload(self.bucket, self.key, self.upload_id, self.parts)
        self.upload_id = None

    def _send(self, data: bytes | bytearray | memoryview, upload_id: str) -> None:
        # minio hashes and sends any bytes-like object: a part is not copied (5 MiB each)
        number = len(self.parts) + 1
        etag = self.store.client._upload_part(self.bucket, self.key, cast(bytes, data), None, upload_id, number)
        self.parts.append(Part(number, etag))

    def abort(self) -> None:
        """Nothing of the object left: the multipart upload aborted (its parts deleted) and the object removed."""
        with _transient("abort", self.key):
            if self.upload_id is not None:
                self.store.client._abort_multipart_upload(self.bucket, self.key, self.upload_id)
                self.upload_id = None
            self.store.client.remove_object(self.bucket, self.key)


@dataclass(slots=True)
class ReadOnce(ObjectStore):
    """An ``ObjectStore`` whose reads of the keys named up front were made once, side by side (``read``), and are answered
    from memory: a handler that reads dozens of small objects (a job report) pays one round trip instead of one each.
    Keys not named, and every write, go to the server."""

    bucket: str = ""
    found: dict[str, bytes | None] = field(default_factory=dict)  # None: the object is missing

    @classmethod
    def read(cls, store: ObjectStore, bucket: str, keys: Iterable[str], threads: int = 16) -> ReadOnce:
        wanted = list(dict.fromkeys(keys))

        def get(key: str) -> bytes | None:
            try:
                return store.get_bytes(bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING:
                    return None
                raise

        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(wanted)))) as pool:
            return cls(store.client, bucket, dict(zip(wanted, pool.map(get, wanted), strict=True)))

    def _known(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key in self.found

    def get_bytes(self, bucket: str, key: str) -> bytes:
        if not self._known(bucket, key):
            return ObjectStore.get_bytes(self, bucket, key)
        data = self.found[key]
        if data is None:
            raise PermanentError(f"{key} is not stored in {bucket}")
        return data

    def exists(self, bucket: str, key: str) -> bool:
        return self.found[key] is not None if self._known(bucket, key) else ObjectStore.exists(self, bucket, key)


class _transient:
    """Turn connection-level failures into DependencyDown: the runner waits the outage out and retries."""

    def __init__(self, action: str, key: str) -> None:
        self.action, self.key = action, key

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        unavailable = isinstance(exc, S3Error) and exc.code in _UNAVAILABLE
        if exc is not None and (unavailable or isinstance(exc, HTTPError | ConnectionError | TimeoutError | ServerError)):
            raise DependencyDown("s3", f"{self.action} {self.key!r} failed: {exc}") from exc


def fetch_job_reference(store: ObjectStore, bucket: str, job_id: str, field: str, ref: str, path: Path) -> Path:
    """The object a storyboard field names, downloaded to ``path``: only a key under the job's own folder.

    Workers never open a path or URL a storyboard names; a missing key and a forbidden one (another
    job's key, a local path, a URL) get the same message, so the answer tells nothing about what exists.
    """
    if not Keys.owned(job_id, ref) or not store.exists(bucket, ref):
        raise InvalidInput(f"{field}: {ref!r} is not one of this job's stored objects (upload it, or give an https URL)")
    return store.get_file(bucket, ref, path)
