"""The asset registry: one row of the media guide's ``media_assets`` table per delivered object.

The uploader writes a row for every object it delivers (segment videos, the film, its parts and
manifest, deliverables, reports); the gateway serves them at ``GET /v1/assets?job=...``. Rows go to
PostgreSQL (psycopg) when ``REELFORGE_ASSETS_DATABASE_URL`` is set, otherwise to JSON objects in the
work bucket (``jobs/{job}/assets/{id}.json``), so local mode needs no database. A row's id is a
function of the job and the object's name: a redelivered event rewrites the same row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from reelforge_shared.storage import Keys, ObjectStore

_NAMESPACE = uuid.UUID("6f1d3c52-9a4e-4a8e-bb0c-7d2f1c0e5a11")

# The media guide's "Supabase Schema", column for column; the index serves GET /v1/assets?job=...
DDL = """
CREATE TABLE IF NOT EXISTS media_assets (
    id UUID PRIMARY KEY,
    name VARCHAR(255),
    type VARCHAR(50),
    storage_provider VARCHAR(50),
    storage_url TEXT,
    public_url TEXT,
    file_size INTEGER,
    metadata JSONB,
    created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS media_assets_job ON media_assets ((metadata->>'job_id'));
"""


_COLUMNS = "id, name, type, storage_provider, storage_url, public_url, file_size, metadata, created_at"


AssetType = Literal["video", "video_part", "manifest", "image", "report"]
Provider = Literal["s3", "gitlab"]


class MediaAsset(BaseModel):
    """One delivered object (a row of ``media_assets``)."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(description="uuid5 of job and name: the same object always has the same id")
    name: str = Field(max_length=255, description="the object's name inside its job", examples=["j-5f1c2e7a9b/final.mp4"])
    type: AssetType = Field(description="what the object is")
    storage_provider: Provider = Field(description="where it is stored")
    storage_url: str = Field(description="provider address: s3://bucket/key, or the GitLab upload path")
    public_url: str | None = Field(
        None,
        description="GitLab's URL of the upload (a HEAD on it answered 200 before the row was written); stored unset for "
        "S3, named by storage_url alone: GET /v1/assets answers a presigned URL made then, valid REELFORGE_LINK_TTL_S",
    )
    file_size: int = Field(ge=0, lt=2**31, description="bytes")
    metadata: dict[str, Any] = Field(default_factory=dict, description="job_id, segment index, sha256, parts, ...")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def job_id(self) -> str:
        return str(self.metadata.get("job_id", ""))

    @staticmethod
    def id_for(job_id: str, name: str) -> uuid.UUID:
        return uuid.uuid5(_NAMESPACE, f"{job_id}/{name}")


class AssetRegistry(Protocol):
    def put(self, asset: MediaAsset) -> None: ...

    def get(self, job_id: str, name: str) -> MediaAsset | None: ...

    def for_job(self, job_id: str) -> list[MediaAsset]: ...


class S3AssetRegistry:
    """Rows as JSON objects beside the job's work (no database needed)."""

    def __init__(self, store: ObjectStore, bucket: str) -> None:
        self.store, self.bucket = store, bucket

    def put(self, asset: MediaAsset) -> None:
        self.store.put_json(self.bucket, Keys.asset(asset.job_id, asset.id), asset.model_dump(mode="json"))

    def get(self, job_id: str, name: str) -> MediaAsset | None:
        key = Keys.asset(job_id, MediaAsset.id_for(job_id, name))
        if not self.store.exists(self.bucket, key):
            return None
        return MediaAsset.model_validate(self.store.get_json(self.bucket, key))

    def for_job(self, job_id: str) -> list[MediaAsset]:
        keys = self.store.list_keys(self.bucket, Keys.assets(job_id))
        rows = [MediaAsset.model_validate(self.store.get_json(self.bucket, k)) for k in keys]
        return sorted(rows, key=lambda a: (a.created_at, a.name))


class PostgresAssetRegistry:
    """Rows in PostgreSQL, written with psycopg; the table is created when missing."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(DDL)

    def put(self, asset: MediaAsset) -> None:
        from psycopg.types.json import Jsonb

        with self._psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO media_assets
                       (id, name, type, storage_provider, storage_url, public_url, file_size, metadata, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET storage_url = EXCLUDED.storage_url, public_url = EXCLUDED.public_url,
                       file_size = EXCLUDED.file_size, metadata = EXCLUDED.metadata""",
                (
                    asset.id,
                    asset.name,
                    asset.type,
                    asset.storage_provider,
                    asset.storage_url,
                    asset.public_url,
                    asset.file_size,
                    Jsonb(asset.metadata),
                    asset.created_at,
                ),
            )

    def _rows(self, where: str, params: tuple) -> list[MediaAsset]:
        from psycopg.rows import dict_row

        with self._psycopg.connect(self.url, row_factory=dict_row) as conn:
            query = f"SELECT {_COLUMNS} FROM media_assets WHERE {where} ORDER BY created_at, name"  # noqa: S608 - fixed clauses
            rows = conn.execute(query, params).fetchall()
        return [MediaAsset.model_validate(r) for r in rows]

    def get(self, job_id: str, name: str) -> MediaAsset | None:
        rows = self._rows("id = %s", (MediaAsset.id_for(job_id, name),))
        return rows[0] if rows else None

    def for_job(self, job_id: str) -> list[MediaAsset]:
        return self._rows("metadata->>'job_id' = %s", (job_id,))


def open_registry(database_url: str | None, store: ObjectStore, work_bucket: str) -> AssetRegistry:
    if database_url:
        return PostgresAssetRegistry(database_url)
    return S3AssetRegistry(store, work_bucket)
