"""Short-lived download links, handed out by the API when asked, never stored.

Records, events and API views hold object keys; a client that wants the bytes asks the API (the
film route, the assets list) and gets a presigned GET URL valid for ``REELFORGE_LINK_TTL_S``
(minutes), signed for ``REELFORGE_S3_PUBLIC_ENDPOINT`` when set (the address clients reach; the
gateway itself may talk to S3 at an internal one). Signing is local: no request goes to S3.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from minio import Minio

from reelforge_shared.settings import CommonSettings


@dataclass(kw_only=True, frozen=True, slots=True)
class Links:
    client: Minio
    ttl: timedelta

    @classmethod
    def from_settings(cls, settings: CommonSettings, *, public_endpoint: str | None, ttl_s: float) -> Links:
        endpoint = public_endpoint or settings.s3_endpoint or ""
        parts = urlsplit(endpoint if "://" in endpoint else f"{'https' if settings.s3_secure else 'http'}://{endpoint}")
        client = Minio(
            parts.netloc,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=parts.scheme == "https",
            region=settings.s3_region,  # known: presigning never asks the server for the bucket's region
        )
        return cls(client=client, ttl=timedelta(seconds=ttl_s))

    def url(self, bucket: str, key: str) -> str:
        """A GET URL of ``bucket/key`` valid for the TTL."""
        return self.client.get_presigned_url("GET", bucket, key, expires=self.ttl)

    def of_storage_url(self, storage_url: str) -> str | None:
        """A GET URL for an ``s3://bucket/key`` address, or None for another provider's."""
        if not storage_url.startswith("s3://"):
            return None
        bucket, _, key = storage_url.removeprefix("s3://").partition("/")
        return self.url(bucket, key) if bucket and key else None
