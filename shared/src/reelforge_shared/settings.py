"""Settings shared by every service, read from the environment (prefix ``REELFORGE_``).

Services subclass :class:`CommonSettings` with their own fields. Settings are built once in
``main()`` and passed in; handlers and tests never read the environment themselves.
"""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Where the bus and the object store are, and how every service talks to them."""

    # A field whose flat name would mean different things to different services (port, preset, steps)
    # takes its environment name from validation_alias (REELFORGE_GATEWAY_PORT ...); code keeps the short name.
    model_config = SettingsConfigDict(env_prefix="REELFORGE_", extra="ignore", populate_by_name=True)

    nats_url: str | None = Field(
        None,
        description="NATS server URL, or several comma-separated (a cluster); unset in `run`/`up` starts an embedded nats-server",
    )
    stream_replicas: int = Field(
        1, ge=1, le=5, description="replicas of the event stream and the KV buckets (3 on a 3-node NATS cluster)"
    )
    subject_prefix: str = Field(
        "reelforge", pattern=r"^[A-Za-z0-9_-]+$", description="first token of every subject; also names the stream"
    )
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint host:port (MinIO in production); unset starts an embedded S3 server"
    )
    s3_access_key: str = Field("reelforge", description="S3 access key")
    s3_secret_key: SecretStr = Field(SecretStr("reelforge-secret"), description="S3 secret key")
    s3_secure: bool = Field(False, description="use HTTPS for S3")
    s3_region: str = Field("us-east-1", description="S3 region")
    work_bucket: str = Field("reelforge-work", description="bucket for frames, segment videos, reports, films")
    delivery_bucket: str = Field("f1-video-clips", description="bucket the uploader delivers to")
    ack_wait_s: float = Field(60.0, gt=0, description="JetStream ack wait; long work reports in-progress well inside it")
    max_deliver: int = Field(4, ge=1, description="deliveries of one event before it is dead-lettered")
    retry_delay_s: float = Field(2.0, ge=0, description="first nak delay after a transient error (doubles per delivery)")
    outage_tolerance_s: float = Field(
        600.0, gt=0, description="how long a worker waits out an S3 or NATS outage before it fails the event, naming the outage"
    )
    work_timeout_s: float = Field(
        1800.0, gt=0, description="longest a handler may work on one event; past it the work is abandoned, the event redelivered"
    )
    drain_s: float = Field(
        25.0, ge=0, description="on SIGTERM, how long in-flight work may finish before it is handed back (nak) for another worker"
    )
    dedup_window_s: float = Field(
        24 * 3600.0, gt=0, description="JetStream duplicate window for Nats-Msg-Id de-duplication"
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535,
        description="port of /metrics and /healthz (`worker`: default 9100; `up`/`run`: only when set; 0: any free port)",
    )
    lag_poll_s: float = Field(5.0, gt=0, description="how often each worker reads its consumers' lag from JetStream for /metrics")
    log_level: str = Field("INFO", description="log level")
    log_json: bool | None = Field(None, description="JSON logs (default: JSON unless stderr is a terminal)")
