"""Settings shared by every service, read from the environment (prefix ``REELFORGE_``).

Services subclass :class:`CommonSettings` with their own fields. Settings are built once in
``main()`` and passed in; handlers and tests never read the environment themselves.
"""

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The identity of the embedded S3 server that local mode starts on loopback; a worker refuses it.
BUILT_IN_S3_ACCESS_KEY = "reelforge"
BUILT_IN_S3_SECRET_KEY = "reelforge-secret"  # noqa: S105 - the embedded loopback server's key, refused in production


class CommonSettings(BaseSettings):
    """Where the bus and the object store are, and how every service talks to them."""

    # A field whose flat name would mean different things to different services (port, preset, steps)
    # takes its environment name from validation_alias (REELFORGE_GATEWAY_PORT ...); code keeps the short name.
    # hide_input_in_errors: a refused setting is named, never echoed with the other values (secrets among them).
    model_config = SettingsConfigDict(env_prefix="REELFORGE_", extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    nats_url: str | None = Field(
        None,
        description="NATS server URL, or several comma-separated (a cluster); unset in `run`/`up` starts an embedded nats-server",
    )
    stream_replicas: int = Field(
        1, ge=1, le=5, description="replicas of the event stream and the KV buckets (3 on a 3-node NATS cluster)"
    )
    nats_user: str | None = Field(None, description="NATS user (the shipped nats-server config has one per service)")
    nats_password: SecretStr | None = Field(None, description="password of REELFORGE_NATS_USER")
    nats_token: SecretStr | None = Field(None, description="NATS token (instead of user and password)")
    nats_creds_file: str | None = Field(None, description="NATS credentials file (.creds: user JWT and nkey seed)")
    nats_nkey_seed_file: str | None = Field(None, description="NATS nkey seed file (nkey authentication)")
    nats_tls_ca: str | None = Field(None, description="CA certificates (PEM file) that NATS's TLS certificate is checked against")
    nats_tls_cert: str | None = Field(None, description="client certificate (PEM file) for NATS mutual TLS")
    nats_tls_key: str | None = Field(None, description="private key (PEM file) of REELFORGE_NATS_TLS_CERT")
    subject_prefix: str = Field(
        "reelforge", pattern=r"^[A-Za-z0-9_-]+$", description="first token of every subject; also names the stream"
    )
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint host:port (MinIO in production); unset starts an embedded S3 server"
    )
    s3_access_key: str = Field(
        BUILT_IN_S3_ACCESS_KEY, description="this service's S3 access key (one identity per service; docs/security.md)"
    )
    s3_secret_key: SecretStr = Field(
        SecretStr(BUILT_IN_S3_SECRET_KEY), description="this service's S3 secret key; a worker refuses the built-in one"
    )
    s3_secure: bool = Field(False, description="use HTTPS for S3")
    s3_ca_bundle: str | None = Field(None, description="CA certificates (PEM file) that S3's TLS certificate is checked against")
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
    abandon_grace_s: float = Field(
        10.0,
        gt=0,
        description="after abandoning a handler (its subprocesses killed), how long its thread may take to return; "
        "past it the worker is wedged: not ready, it drains and exits (code 3) for its supervisor to restart",
    )
    drain_s: float = Field(
        25.0, ge=0, description="on SIGTERM, how long in-flight work may finish before it is handed back (nak) for another worker"
    )
    dedup_window_s: float = Field(24 * 3600.0, gt=0, description="JetStream duplicate window for Nats-Msg-Id de-duplication")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="port of /metrics and /healthz (`worker`: default 9100; `up`/`run`: only when set; 0: any free port)",
    )
    metrics_host: str = Field(
        "0.0.0.0",  # noqa: S104 - a pod's or container's probes and scrapes come from outside it
        description="address /metrics and /healthz listen on (127.0.0.1 where the host network is shared: make test-deploy)",
    )
    lag_poll_s: float = Field(5.0, gt=0, description="how often each worker reads its consumers' lag from JetStream for /metrics")
    fetch_wait_s: float = Field(
        1.0,
        gt=0,
        le=30,
        description="how long a worker's pull for the next message waits before it asks again; a stopping worker waits"
        " at most this long for its pulls to end (shorter: a quicker stop, more requests while idle)",
    )
    log_level: str = Field("INFO", description="log level")
    log_json: bool | None = Field(None, description="JSON logs (default: JSON unless stderr is a terminal)")

    @model_validator(mode="after")
    def _one_nats_identity(self) -> Self:
        ways = {
            "REELFORGE_NATS_USER": self.nats_user,
            "REELFORGE_NATS_TOKEN": self.nats_token,
            "REELFORGE_NATS_CREDS_FILE": self.nats_creds_file,
            "REELFORGE_NATS_NKEY_SEED_FILE": self.nats_nkey_seed_file,
        }
        chosen = [name for name, value in ways.items() if value]
        if len(chosen) > 1:
            raise ValueError(f"NATS credentials: set one of {', '.join(ways)}, not {' and '.join(chosen)}")
        if self.nats_password and not self.nats_user:
            raise ValueError("REELFORGE_NATS_PASSWORD is set without REELFORGE_NATS_USER")
        if self.nats_tls_key and not self.nats_tls_cert:
            raise ValueError("REELFORGE_NATS_TLS_KEY is set without REELFORGE_NATS_TLS_CERT")
        return self
