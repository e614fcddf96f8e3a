from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr

from reelforge_shared.references import ReferenceLimits
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storyboard import MAX_FPS, MAX_FRAMES, MAX_PROMPT_CHARS, MAX_SEGMENTS, StoryboardLimits

_LIMITS = StoryboardLimits()  # the defaults: one place (reelforge_shared.storyboard)


class GatewaySettings(CommonSettings):
    host: str = Field(
        "127.0.0.1", validation_alias="REELFORGE_GATEWAY_HOST", description="gateway listen address (0.0.0.0 in containers)"
    )
    port: int = Field(
        8080, ge=0, le=65535, validation_alias="REELFORGE_GATEWAY_PORT", description="gateway HTTP port (0: any free port)"
    )
    max_body_bytes: int = Field(5_000_000, ge=1024, description="largest storyboard accepted (413 above)")
    reference_timeout_s: float = Field(
        20.0, gt=0, le=300, description="one https reference a storyboard names: fetched within this at submission, or 422"
    )
    max_yaml_bytes: int = Field(
        256_000, ge=1024, description="largest YAML storyboard (YAML is slow to read; JSON up to REELFORGE_MAX_BODY_BYTES)"
    )
    parse_timeout_s: float = Field(
        1.0, gt=0, le=60, description="a storyboard not read and checked within this is refused (422), off the event loop"
    )
    max_segments: int = Field(_LIMITS.segments, ge=1, le=MAX_SEGMENTS, description="segments per job (422 above)")
    max_frames_per_segment: int = Field(
        _LIMITS.frames_per_segment, ge=1, le=MAX_FRAMES, description=f"frames per segment (422 above; fps is 1-{MAX_FPS})"
    )
    max_film_seconds: float = Field(_LIMITS.film_seconds, gt=0, description="seconds of film one job may ask for (422 above)")
    max_output_pixels: int = Field(
        _LIMITS.output_pixels, ge=256, description="output width x height a job may ask for (422 above; 3840x2160)"
    )
    max_field_chars: int = Field(
        _LIMITS.field_chars,
        ge=64,
        le=MAX_PROMPT_CHARS,
        description="characters in any text field of a storyboard (422 above)",
    )
    assets_database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL for the media_assets table (uploader writes, gateway reads); unset: rows in the work bucket",
    )
    model: str | None = Field(
        None,
        description="the generator's REELFORGE_MODEL: prompts of segments that name no model are checked against "
        "its text encoder's limit (unset: only models the storyboard names are checked)",
    )
    default_text_to_video_model: str = Field(
        "damo-vilab/text-to-video-ms-1.7b",
        description="model of /api/video/text-to-video when none or an unavailable one is asked for (`run`/`up`: tiny-zeroscope)",
    )
    default_image_to_video_model: str = Field(
        "stabilityai/stable-video-diffusion-img2vid",
        description="model of /api/video/image-to-video when none or an unavailable one is asked for (`run`/`up`: tiny-svd)",
    )
    shot_reuse: bool = Field(
        True,
        description="a segment whose shot key the same owner already rendered and passed reuses those frames "
        "instead of rendering (off: every segment renders)",
    )
    max_video_duration: float = Field(30.0, gt=0, description="longest video (seconds) the /api/video endpoints render")
    sync_timeout_s: float = Field(
        60.0, ge=0, description="/api/video endpoints answer with the MP4 if it is done within this, else 202 with the job"
    )
    max_upload_bytes: int = Field(
        20_000_000,
        ge=1024,
        description="largest upload body (image-to-video, /v1/uploads), counted as it streams (413 above; never held whole)",
    )
    max_image_pixels: int = Field(4096 * 4096, ge=256, description="largest image (width x height) accepted for image-to-video")
    api_tokens: SecretStr | None = Field(
        None, description="bearer tokens of the API as comma-separated `name:token` pairs; logs name the caller, never the token"
    )
    api_auth: Literal["on", "off"] = Field(
        "on", description="`off` serves /v1 without tokens (set by `reelforge run`/`up` when no tokens are configured)"
    )
    ops_endpoints: Literal["public", "token", "internal"] = Field(
        "public",
        description="/metrics, /docs, /openapi.json on the API port: `public`; `token`: a bearer token needed; "
        "`internal`: /metrics only on REELFORGE_METRICS_PORT, the docs behind a token (the shipped deploys)",
    )
    api_admins: str = Field(
        "",
        description="token names (comma-separated) with the admin scope: they see every owner's jobs, those submitted "
        "without the API (owner `local`) included; everyone else sees only their own",
    )
    link_ttl_s: float = Field(
        600.0, ge=10, le=86_400, description="seconds a download URL handed out by the API (film, assets) stays valid"
    )
    s3_public_endpoint: str | None = Field(
        None,
        description="S3 address clients reach (https://s3.example.com): download URLs are signed for it; "
        "unset: REELFORGE_S3_ENDPOINT",
    )
    rate_limit_per_min: int = Field(
        60,
        ge=1,
        le=10_000,
        description="requests per token in any minute (429 with Retry-After above; the window is one KV value)",
    )
    max_jobs_in_flight: int = Field(10, ge=1, description="unfinished jobs per token (429 `queue_full` above)")
    job_retention: timedelta = Field(
        timedelta(days=30),
        gt=timedelta(0),
        description="how long a finished job stays in the job store (ISO 8601 like P30D, or seconds); then deleted whole",
    )
    max_event_streams: int = Field(
        8,
        ge=1,
        description="open event streams (/v1/jobs/{id}/events) per token over every gateway replica (429 above; "
        "counted in the job store, sse.{token})",
    )
    event_stream_lease_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="an open event stream's lease on its place, refreshed every third of it: a replica killed with "
        "streams open gives their places back this long after at the latest",
    )
    sse_heartbeat_s: float = Field(15.0, gt=0, description="seconds between heartbeat comments on a job's event stream")
    webhook_allow_private: bool = Field(False, description="allow webhook targets on loopback/private addresses")
    allow_test_model: bool = Field(
        False,
        description="allow the built-in random-weight test models outside local mode (they render noise; `run`/`up` allow them)",
    )

    def reference_limits(self) -> ReferenceLimits:
        """Uploads and fetched references: the upload cap in bytes, the image pixel cap."""
        return ReferenceLimits(max_bytes=self.max_upload_bytes, max_pixels=self.max_image_pixels)

    def storyboard_limits(self) -> StoryboardLimits:
        return StoryboardLimits(
            segments=self.max_segments,
            frames_per_segment=self.max_frames_per_segment,
            film_seconds=self.max_film_seconds,
            output_pixels=self.max_output_pixels,
            field_chars=self.max_field_chars,
        )
