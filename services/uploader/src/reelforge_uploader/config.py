from pydantic import Field, SecretStr

from reelforge_shared.settings import CommonSettings


class UploaderSettings(CommonSettings):
    gitlab_url: str | None = Field(
        None, description="GitLab base URL (https://gitlab.com); set with _PROJECT and _TOKEN, videos over the threshold go there"
    )
    gitlab_project: str | None = Field(None, description="GitLab project id or path (group/media-assets) that receives uploads")
    gitlab_token: SecretStr | None = Field(None, description="GitLab access token (api scope) for uploads")
    gitlab_threshold_bytes: int = Field(1 << 20, ge=0, description="videos larger than this go to GitLab (Large media to GitLab)")
    gitlab_split_bytes: int = Field(
        50 << 20, ge=1024, description="videos larger than this are uploaded in numbered parts of this size plus a manifest"
    )
    assets_database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL for the media_assets table (uploader writes, gateway reads); unset: rows in the work bucket",
    )
    head_timeout_s: float = Field(30.0, gt=0, description="timeout of the HEAD request on each public URL before delivery counts")
    uploader_deliverable_wait_s: float = Field(
        20.0,
        gt=0,
        description="how long film.checked waits for a deliverable the encoder stores after the film (its crops) before "
        "the event is retried after REELFORGE_RETRY_DELAY_S",
    )
    webhook_urls: str = Field(
        "", description="comma-separated URLs that receive every job's job.completed/failed/cancelled webhooks (signed)"
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Standard Webhooks signing secret (whsec_ + base64); webhooks are not sent without it"
    )
    webhook_allow_private: bool = Field(False, description="allow webhook targets on loopback/private addresses")
    webhook_segment_events: bool = Field(False, description="also send segment.delivered webhooks")
    webhook_retry_first_s: float = Field(30.0, gt=0, description="first webhook retry delay; doubles (at most 8 h) per retry")
    webhook_retry_span_s: float = Field(
        24 * 3600.0, gt=0, description="webhook retries go on until their delays add up to this (JetStream backoff list)"
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="deadline of one webhook attempt as a whole (resolve, connect, POST, answer), not per read"
    )

    @property
    def webhook_targets(self) -> list[str]:
        return [u.strip() for u in self.webhook_urls.split(",") if u.strip()]
