"""Who may do what: each service's NATS subjects and S3 buckets, in one table.

The shipped server configurations are generated from this table (``reelforge access nats`` and
``reelforge access s3``), so a service that starts publishing a new event changes it here once.
It also says when settings must not run outside local mode (the built-in S3 keys).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from reelforge_shared.clients import inbox_prefix
from reelforge_shared.events import Event as _Event
from reelforge_shared.events import (
    FilmChecked,
    FilmEncoded,
    FilmRequested,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    SegmentChecked,
    SegmentDelivered,
    SegmentEncoded,
    SegmentFailed,
    SegmentGenerated,
    SegmentRequested,
    SegmentRerenderRequested,
    WebhookFailed,
    WebhookRequested,
)
from reelforge_shared.jobs import BUCKET as LEDGER
from reelforge_shared.jobs import OBSERVED_EVENTS
from reelforge_shared.settings import BUILT_IN_S3_SECRET_KEY, CommonSettings

Rights = Literal["", "read", "write"]
FAILURES: tuple[type[_Event], ...] = (SegmentFailed, JobFailed)  # the runner publishes these for any service


@dataclass(frozen=True, slots=True)
class ServiceAccess:
    """What one service may touch: events (its durable consumers, its publishes), the job ledger, S3 buckets."""

    consumes: tuple[type[_Event], ...]
    publishes: tuple[type[_Event], ...]
    work: Rights
    delivery: Rights
    ledger: Rights = "read"  # every service reads the job ledger (is the job cancelled?); the gateway keeps it

    def durables(self, service: str) -> list[str]:
        return [durable_name(service, event) for event in self.consumes]


SERVICES: dict[str, ServiceAccess] = {
    # The ledger's observer folds every job event in (the last delivery asks for the film); the API submits,
    # cancels and re-renders (also when a service asks for it), and redirects to films in the delivery bucket.
    "gateway": ServiceAccess(
        consumes=(*OBSERVED_EVENTS, SegmentRerenderRequested),
        publishes=(JobSubmitted, SegmentRequested, FilmRequested, JobCancelled),
        work="write",
        delivery="read",
        ledger="write",
    ),
    "generator": ServiceAccess(consumes=(SegmentRequested,), publishes=(SegmentGenerated,), work="write", delivery=""),
    "encoder": ServiceAccess(
        consumes=(SegmentGenerated, FilmRequested), publishes=(SegmentEncoded, FilmEncoded), work="write", delivery=""
    ),
    "qa": ServiceAccess(
        consumes=(SegmentEncoded, FilmEncoded),
        publishes=(SegmentChecked, SegmentRequested, FilmChecked, SegmentRerenderRequested),  # the last: continuity QA
        work="write",
        delivery="",
    ),
    # Delivery, then the webhooks of finished jobs (and of delivered segments when they are asked for).
    "uploader": ServiceAccess(
        consumes=(SegmentChecked, FilmChecked, JobCompleted, JobFailed, JobCancelled, SegmentDelivered, WebhookRequested),
        publishes=(SegmentDelivered, JobCompleted, WebhookRequested, WebhookFailed),
        work="write",
        delivery="write",
    ),
}


def durable_name(service: str, event: type[_Event]) -> str:
    """The durable consumer a service reads one subject through (the runner's name for it)."""
    return f"{service}-{event.subject.replace('.', '-')}"


def stream_name(prefix: str) -> str:
    return prefix.upper().replace("-", "_").replace(".", "_")


def password_variable(user: str) -> str:
    """The environment variable the shipped nats-server config reads a user's password from."""
    return f"REELFORGE_NATS_PASSWORD_{user.upper()}"


# --- NATS -------------------------------------------------------------------------------------------------------------


def nats_permissions(service: str, prefix: str = "reelforge") -> dict[str, dict[str, list[str]]]:
    """Publish and subscribe allow-lists of one service: its own subjects and the JetStream API calls its bus makes."""
    access, stream = SERVICES[service], stream_name(prefix)
    publish = [f"{prefix}.{event.subject}" for event in (*access.publishes, *FAILURES)]
    publish += [f"{prefix}.dead.{service}", "$JS.API.INFO"]
    publish += [f"$JS.API.STREAM.{call}.{stream}" for call in ("INFO", "CREATE", "UPDATE")]  # Bus.ensure_stream
    for durable in access.durables(service):
        publish += [
            f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",  # ack, nak, in-progress, term of its own messages
        ]
    if access.ledger:  # Bus.key_value opens (or makes) the bucket; reads are direct gets; keys() and watch() consume
        bucket = f"{stream}_{LEDGER}"
        kv = f"KV_{bucket}"
        publish += [f"$JS.API.STREAM.{call}.{kv}" for call in ("INFO", "CREATE", "UPDATE", "MSG.GET")]
        publish += [f"$JS.API.DIRECT.GET.{kv}", f"$JS.API.DIRECT.GET.{kv}.>"]
        publish += [f"$JS.API.CONSUMER.CREATE.{kv}", f"$JS.API.CONSUMER.CREATE.{kv}.>", f"$JS.FC.{kv}.>"]
        publish += [f"$JS.API.CONSUMER.INFO.{kv}.*", f"$JS.API.CONSUMER.DELETE.{kv}.*"]  # a watcher checks and ends its own
        if access.ledger == "write":
            publish.append(f"$KV.{bucket}.>")
    return {"publish": {"allow": publish}, "subscribe": {"allow": [f"{inbox_prefix(service)}.>"]}}


def downstream_permissions(prefix: str = "reelforge") -> dict[str, dict[str, list[str]]]:
    """A downstream consumer: reads every event (live, or replayed through an ephemeral consumer), publishes none."""
    stream = stream_name(prefix)
    publish = ["$JS.API.INFO", f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.CONSUMER.CREATE.{stream}", f"$JS.FC.{stream}.>"]
    return {"publish": {"allow": publish}, "subscribe": {"allow": [f"{prefix}.>", "_INBOX.>"]}}


def nats_authorization(prefix: str = "reelforge", passwords: dict[str, str] | None = None) -> str:
    """The ``authorization`` block of a nats-server config: one user per service, ``downstream`` and ``admin``.

    Without ``passwords`` each user's password is read from the environment of nats-server
    (``$REELFORGE_NATS_PASSWORD_GENERATOR`` ...), so the file holds no secret.
    """
    users = {name: nats_permissions(name, prefix) for name in SERVICES}
    users["downstream"] = downstream_permissions(prefix)
    users["admin"] = {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    lines = ["authorization {", "  users = ["]
    for user, permissions in users.items():
        secret = json.dumps(passwords[user]) if passwords is not None else f"${password_variable(user)}"
        lines.append(f"    {{user: {user}, password: {secret}, permissions: {json.dumps(permissions)}}}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


# --- S3 ---------------------------------------------------------------------------------------------------------------

_ACTIONS = {"": [], "read": ["Read", "List"], "write": ["Read", "List", "Write"]}


def seaweedfs_identities(keys: dict[str, tuple[str, str]], work_bucket: str, delivery_bucket: str) -> dict[str, Any]:
    """A SeaweedFS ``-s3.config``: one identity per service with actions on its own buckets; ``admin`` makes buckets.

    ``keys`` maps each name in SERVICES (and ``admin``) to (access key, secret key). Bucket names may
    end in ``*`` (SeaweedFS matches the prefix).
    """
    identities = []
    for name, (access_key, secret_key) in keys.items():
        if name == "admin":
            actions = ["Admin", "Read", "List", "Write", "Tagging"]
        else:
            rights = SERVICES[name]
            actions = [f"{a}:{work_bucket}" for a in _ACTIONS[rights.work]]
            actions += [f"{a}:{delivery_bucket}" for a in _ACTIONS[rights.delivery]]
        identities.append({"name": name, "credentials": [{"accessKey": access_key, "secretKey": secret_key}], "actions": actions})
    return {"identities": identities}


def minio_policy(service: str, work_bucket: str, delivery_bucket: str) -> dict[str, Any]:
    """The same rights as an S3 (MinIO) IAM policy, for ``mc admin policy create``."""
    verbs = {"read": ["s3:GetObject"], "write": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]}
    statements = []
    for bucket, rights in ((work_bucket, SERVICES[service].work), (delivery_bucket, SERVICES[service].delivery)):
        if rights:
            statements.append(
                {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": [f"arn:aws:s3:::{bucket}"]}
            )
            statements.append({"Effect": "Allow", "Action": verbs[rights], "Resource": [f"arn:aws:s3:::{bucket}/*"]})
    return {"Version": "2012-10-17", "Statement": statements}


def unsafe_defaults(settings: CommonSettings) -> str | None:
    """Why these settings must not run outside local mode, in one line; None when they may."""
    if settings.s3_secret_key.get_secret_value() == BUILT_IN_S3_SECRET_KEY:
        return (
            "refusing to start: REELFORGE_S3_ACCESS_KEY/REELFORGE_S3_SECRET_KEY are the built-in development keys; "
            "set this service's own S3 keys (docs/security.md)"
        )
    return None


def access_table(prefix: str = "reelforge") -> str:
    """Markdown: each service's NATS user, what it consumes and publishes, its ledger and bucket rights."""
    rows = [
        "| service (NATS user) | consumes | publishes | job ledger | work bucket | delivery bucket |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, access in SERVICES.items():
        consumes = ", ".join(f"`{e.subject}`" for e in access.consumes)
        publishes = ", ".join(f"`{e.subject}`" for e in (*access.publishes, *FAILURES)) + f", `dead.{name}`"
        rows.append(
            f"| {name} | {consumes} | {publishes} | {access.ledger or '-'} | {access.work or '-'} | {access.delivery or '-'} |"
        )
    rows.append("| downstream | every subject, live or replayed (ephemeral consumers) | nothing | - | - | - |")
    return "\n".join(rows)
