"""Who may do what: each service's NATS subjects and S3 buckets, derived from the flow table.

The rights follow from ``reelforge_shared.flow.FLOW`` (what a service consumes and publishes, its
bucket and KV rights); the shipped server configurations are generated from them (``reelforge access
nats`` and ``reelforge access minio-policy``). It also says when settings must not run outside local
mode (the built-in S3 keys, placeholder secrets).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import SecretStr

from reelforge_shared.clients import inbox_prefix
from reelforge_shared.flow import (
    FLOW,
    KV_BUCKETS,
    SERVICES,
    dead_letter_subject,
    durable_name,
    filter_subject,
    kv_bucket,
    publish_subjects,
    stream_name,
)
from reelforge_shared.settings import BUILT_IN_S3_SECRET_KEY, CommonSettings


def password_variable(user: str) -> str:
    """The environment variable the shipped nats-server config reads a user's password from."""
    return f"REELFORGE_NATS_PASSWORD_{user.upper()}"


# --- NATS -------------------------------------------------------------------------------------------------------------


def nats_permissions(service: str, prefix: str = "reelforge") -> dict[str, dict[str, list[str]]]:
    """Publish and subscribe allow-lists of one service: its own subjects and the JetStream API calls its bus makes."""
    flow, stream = FLOW[service], stream_name(prefix)
    publish = [*publish_subjects(service, prefix), dead_letter_subject(prefix, service), "$JS.API.INFO"]
    publish.append(f"$JS.API.STREAM.INFO.{stream}")  # Bus.require_stream: only `reelforge bootstrap` makes it
    for row in flow.consumes:
        durable = durable_name(service, row.event)
        publish += [
            f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",  # ack, nak, in-progress, term of its own messages
        ]
    for name in KV_BUCKETS if flow.kv else ():  # reads are direct gets; keys() and watch() consume
        bucket = kv_bucket(prefix, name)
        kv = f"KV_{bucket}"
        publish += [f"$JS.API.STREAM.{call}.{kv}" for call in ("INFO", "MSG.GET")]
        publish += [f"$JS.API.DIRECT.GET.{kv}", f"$JS.API.DIRECT.GET.{kv}.>"]
        publish += [f"$JS.API.CONSUMER.CREATE.{kv}", f"$JS.API.CONSUMER.CREATE.{kv}.>", f"$JS.FC.{kv}.>"]
        publish += [f"$JS.API.CONSUMER.INFO.{kv}.*", f"$JS.API.CONSUMER.DELETE.{kv}.*"]  # a watcher checks and ends its own
        if flow.kv == "write":  # its own keys; a stream purge of one key removes it without a marker
            publish += [f"$KV.{bucket}.>", f"$JS.API.STREAM.PURGE.{kv}"]
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

    ``keys`` maps each service of the flow table (and ``admin``) to (access key, secret key). Bucket names may
    end in ``*`` (SeaweedFS matches the prefix).
    """
    identities = []
    for name, (access_key, secret_key) in keys.items():
        if name == "admin":
            actions = ["Admin", "Read", "List", "Write", "Tagging"]
        else:
            rights = FLOW[name]
            actions = [f"{a}:{work_bucket}" for a in _ACTIONS[rights.work]]
            actions += [f"{a}:{delivery_bucket}" for a in _ACTIONS[rights.delivery]]
        identities.append({"name": name, "credentials": [{"accessKey": access_key, "secretKey": secret_key}], "actions": actions})
    return {"identities": identities}


def minio_policy(service: str, work_bucket: str, delivery_bucket: str) -> dict[str, Any]:
    """The same rights as an S3 (MinIO) IAM policy, for ``mc admin policy create``."""
    # AbortMultipartUpload: a streamed upload that is refused or cut leaves no parts behind (PutObject does not cover it)
    write = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    verbs = {"read": ["s3:GetObject"], "write": write}
    statements = []
    for bucket, rights in ((work_bucket, FLOW[service].work), (delivery_bucket, FLOW[service].delivery)):
        if rights:
            listing = ["s3:ListBucket", "s3:GetBucketLocation"]
            listing += ["s3:ListBucketMultipartUploads"] if rights == "write" else []  # the gateway's sweep of incoming/
            statements.append({"Effect": "Allow", "Action": listing, "Resource": [f"arn:aws:s3:::{bucket}"]})
            statements.append({"Effect": "Allow", "Action": verbs[rights], "Resource": [f"arn:aws:s3:::{bucket}/*"]})
    return {"Version": "2012-10-17", "Statement": statements}


def unsafe_defaults(settings: CommonSettings) -> str | None:
    """Why these settings must not run outside local mode, in one line; None when they may."""
    if settings.s3_secret_key.get_secret_value() == BUILT_IN_S3_SECRET_KEY:
        return (
            "refusing to start: REELFORGE_S3_ACCESS_KEY/REELFORGE_S3_SECRET_KEY are the built-in development keys; "
            "set this service's own S3 keys (docs/security.md)"
        )
    for field, info in type(settings).model_fields.items():
        value = getattr(settings, field)
        if isinstance(value, SecretStr) and _is_placeholder(value.get_secret_value()):
            variable = info.validation_alias if isinstance(info.validation_alias, str) else f"REELFORGE_{field}"
            return secret_refusal(variable.upper(), value.get_secret_value())
    return None


def secret_refusal(variable: str, value: str) -> str | None:
    """Why the secret ``variable`` must not be used as it is (empty, or a placeholder), in one line; None when it may."""
    if value and not _is_placeholder(value):
        return None
    what = "not set" if not value else "a placeholder (as in an example file, or a well-known default)"
    return f"refusing to start: {variable} is {what}; set a long random value of its own (docs/security.md)"


# What example files and quick starts put in a secret's place: refused outside local mode like the built-in keys.
_PLACEHOLDER_TEXT = re.compile(r"change[-_.]?me|replace[-_.]?me|changeit|your[-_.]?(secret|password|token)", re.IGNORECASE)
_PLACEHOLDER_WORDS = {"password", "passw0rd", "secret", "admin", "minioadmin", "example", "test", "default", "letmein", "123456"}


def _is_placeholder(secret: str) -> bool:
    """A placeholder anywhere in the value, or a whole part of it (API tokens are ``name:token,...``) a default word."""
    parts = re.split(r"[,:]", secret)
    return bool(_PLACEHOLDER_TEXT.search(secret)) or any(p.strip().lower() in _PLACEHOLDER_WORDS for p in parts)


def access_table(prefix: str = "reelforge") -> str:
    """Markdown: each service's NATS user, what it consumes and publishes, its job-store and bucket rights."""
    rows = [
        "| service (NATS user) | consumes | publishes | job store (KV) | work bucket | delivery bucket |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, flow in FLOW.items():
        consumes = ", ".join(f"`{filter_subject(prefix, row.event).removeprefix(prefix + '.')}`" for row in flow.consumes)
        publishes = ", ".join(f"`{s.removeprefix(prefix + '.')}`" for s in publish_subjects(name, prefix))
        publishes += f", `{dead_letter_subject(prefix, name).removeprefix(prefix + '.')}`"
        rows.append(f"| {name} | {consumes} | {publishes} | {flow.kv or '-'} | {flow.work or '-'} | {flow.delivery or '-'} |")
    rows.append("| downstream | every subject, live or replayed (ephemeral consumers) | nothing | - | - | - |")
    return "\n".join(rows)
