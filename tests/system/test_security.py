"""Least privilege on the real servers: per-service NATS users and S3 identities, no secret in a log line.

The NATS users and permissions and the S3 identities come from ``reelforge_shared.access``, the
table the shipped configurations (deploy/nats/auth.conf, deploy/minio/policies/) are generated from.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
import uuid
from asyncio.subprocess import PIPE, STDOUT
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import structlog
from minio.error import S3Error
from typer.testing import CliRunner

from reelforge.cli import app
from reelforge.stack import SERVICE_MODULES, build_service, local_stack
from reelforge_gateway.rates import SharedWindow
from reelforge_shared.access import access_table, minio_policy, nats_authorization
from reelforge_shared.bus import Bus, bootstrap
from reelforge_shared.embedded import EmbeddedServer, start_nats
from reelforge_shared.events import JobCompleted
from reelforge_shared.flow import FLOW, KV_BUCKETS, SERVICES, durable_name, kv_bucket, publish_subjects, stream_name
from reelforge_shared.jobs import JobRecord, Ledger
from reelforge_shared.logging import register_secrets
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import ObjectStore
from support.paths import ROOT

USERS = [*SERVICES, "downstream", "admin"]


def _passwords() -> dict[str, str]:
    return {user: f"{user}-{uuid.uuid4().hex}" for user in USERS}


@pytest.fixture
def secured_nats(tmp_path: Path, overrides: dict[str, Any]) -> tuple[EmbeddedServer, dict[str, str]]:
    """A nats-server of this test's own with the generated per-service users, for the test's subject prefix."""
    passwords = _passwords()
    server = start_nats(tmp_path / "nats", extra=nats_authorization(overrides["subject_prefix"], passwords))
    yield server, passwords
    server.stop()


def _as(overrides: dict[str, Any], user: str, passwords: dict[str, str], url: str) -> CommonSettings:
    return CommonSettings(**overrides | {"nats_url": url, "nats_user": user, "nats_password": passwords[user]})


def test_shipped_configs_are_the_generated_ones() -> None:
    assert (ROOT / "deploy/nats/auth.conf").read_text() == nats_authorization(), "run `reelforge access nats`"
    assert access_table() in (ROOT / "docs/security.md").read_text(), "run `reelforge access table`"
    defaults = CommonSettings()
    for service in SERVICES:
        shipped = json.loads((ROOT / f"deploy/minio/policies/{service}.json").read_text())
        assert shipped == minio_policy(service, defaults.work_bucket, defaults.delivery_bucket), service


def test_the_access_table_names_every_route(overrides: dict[str, Any]) -> None:
    """What each service consumes, as its routes say (the permissions allow exactly these durables)."""
    for name in SERVICE_MODULES:
        routes = build_service(name, overrides | {"webhook_segment_events": True, "api_auth": "off"}).routes
        assert {route.event for route in routes} == {row.event for row in FLOW[name].consumes}, name


async def test_nats_refuses_what_a_service_may_not_do(secured_nats, overrides: dict[str, Any]) -> None:
    server, passwords = secured_nats
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    # The admin identity makes the stream and buckets (reelforge bootstrap); every service then does its bus
    # work under its own user: its durables, the ledger, its publishes, its own stages' failures.
    await bootstrap(_as(overrides, "admin", passwords, server.url))
    for name, flow in FLOW.items():
        bus = await Bus.connect(_as(overrides, name, passwords, server.url), name=f"reelforge-{name}", service=name)
        for row in flow.consumes:
            await bus.pull(row.event, durable_name(name, row.event), ack_wait_s=5, max_deliver=2)
        kv = await bus.key_value("jobs")  # the job ledger: the gateway keeps it, every service reads it
        if flow.kv == "write":
            await kv.put("job-1", b"{}")
        assert (await kv.get("job-1")).value == b"{}"
        assert await kv.keys() == ["job-1"]
        if flow.kv == "write":  # what the gateway's store does beyond get/put: counts, stream reads, purges
            ledger = await Ledger.open(bus)
            await ledger.create(JobRecord(job_id="j-perm", owner="alice"))
            assert [r.job_id for r in (await ledger.list_jobs(None))[1]] == ["j-perm"]
            await ledger.cancel("j-perm")
            assert await ledger.sweep(timedelta(days=1), now=datetime.now(UTC) + timedelta(days=2)) == 1
            assert (await ledger.list_jobs(None))[0] == 0
            assert await SharedWindow(kv=kv, per_minute=1).hit("alice") is None
            await kv.purge("rate.alice")  # the other services below list the bucket's keys
        for subject in publish_subjects(name, bus.prefix):
            ack = await bus.js.publish(subject, b"{}", timeout=5)
            assert ack.stream == bus.stream
        await bus.close()

    # The generator may not announce a finished job, read another service's queue, or listen to the whole bus.
    prefix = overrides["subject_prefix"]
    generator = await nats.connect(
        server.url, user="generator", password=passwords["generator"], error_cb=on_error, inbox_prefix="_INBOX_generator"
    )
    await generator.publish(f"{prefix}.job.completed", b"{}")
    await generator.subscribe(f"{prefix}.>")
    with pytest.raises(nats.errors.TimeoutError):
        await generator.request(f"$JS.API.CONSUMER.MSG.NEXT.{prefix.upper()}.encoder-segment-generated", b"1", timeout=1)
    await generator.flush()
    await generator.close()
    refused = [e.lower() for e in errors if "permissions violation" in e.lower()]
    assert f'publish to "{prefix}.job.completed"'.lower() in " ".join(refused), errors
    assert f'subscription to "{prefix}.>"'.lower() in " ".join(refused), errors
    assert "msg.next" in " ".join(refused), errors
    assert "encoder-segment-generated" in " ".join(refused), errors

    # A wrong password gets nowhere.
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(server.url, user="generator", password="wrong", allow_reconnect=False, max_reconnect_attempts=0)


async def test_the_generator_cannot_change_the_bus_or_fail_another_stage(secured_nats, overrides: dict[str, Any]) -> None:
    """The attack of issue 16: the generator's user wipes the stream and the job store, and forges failures."""
    server, passwords = secured_nats
    prefix = overrides["subject_prefix"]
    admin_settings = _as(overrides, "admin", passwords, server.url)
    await bootstrap(admin_settings)
    admin = await Bus.connect(admin_settings, name="admin")
    for name in KV_BUCKETS:
        await (await admin.key_value(name)).put("job-1", b"{}")
    stream, before = stream_name(prefix), (await admin.js.stream_info(stream_name(prefix))).config

    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    generator = await nats.connect(
        server.url, user="generator", password=passwords["generator"], error_cb=on_error, inbox_prefix="_INBOX_generator"
    )
    js = generator.jetstream(timeout=1)
    attempts = [
        lambda: js.update_stream(replace(before, max_msgs=1)),
        lambda: js.delete_stream(stream),
        lambda: js.purge_stream(stream),
        lambda: js.add_stream(name="EVIL", subjects=[f"{prefix}.evil.>"]),
    ]
    for name in KV_BUCKETS:
        kv_stream = f"KV_{kv_bucket(prefix, name)}"
        kv_config = (await admin.js.stream_info(kv_stream)).config
        attempts += [
            lambda c=kv_config: js.update_stream(replace(c, max_age=1.0)),
            lambda s=kv_stream: js.delete_stream(s),
            lambda s=kv_stream: js.purge_stream(s),
        ]
    for attempt in attempts:
        with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
            await attempt()
    forged = [f"{prefix}.segment.failed.encoder", f"{prefix}.job.failed.encoder", f"{prefix}.job.failed.generator"]
    for subject in forged:
        await generator.publish(subject, b'{"job_id": "j-1"}')
    await generator.flush()
    # The server's -ERR for each refused publish reaches error_cb on a task of its own, possibly after the
    # flush's PONG: wait (up to 10 s) until every forged subject has been reported before closing.
    for _ in range(100):
        if all(f'publish to "{subject}"' in " ".join(errors) for subject in forged):
            break
        await asyncio.sleep(0.1)
    await generator.close()

    assert "permissions violation" in " ".join(errors)
    for subject in forged:
        assert f'publish to "{subject}"' in " ".join(errors), subject
    after = await admin.js.stream_info(stream)
    assert after.config.max_msgs == before.max_msgs
    for subject in forged:
        with pytest.raises(nats.js.errors.NotFoundError):
            await admin.js.get_last_msg(stream, subject)
    for name in KV_BUCKETS:
        assert (await (await admin.key_value(name)).get("job-1")).value == b"{}"
        kv_info = await admin.js.stream_info(f"KV_{kv_bucket(prefix, name)}")
        assert kv_info.config.max_age in (None, 0, 0.0)
    with pytest.raises(nats.js.errors.NotFoundError):
        await admin.js.stream_info("EVIL")
    await admin.close()


async def test_a_service_does_not_start_without_the_stream(overrides: dict[str, Any], store: ObjectStore, s3_keys) -> None:
    """No bootstrap, no stream: the worker exits 2 with one line that says to run `reelforge bootstrap`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFORGE_")}
    env |= {f"REELFORGE_{k.upper()}": str(v) for k, v in overrides.items()}
    env |= {f"REELFORGE_{k.upper()}": v for k, v in s3_keys["encoder"].items()}
    env |= {"REELFORGE_SUBJECT_PREFIX": "unbooted" + uuid.uuid4().hex[:6], "REELFORGE_LOG_JSON": "true"}
    env["REELFORGE_METRICS_PORT"] = "0"
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reelforge.cli", "worker", "encoder", env=env, stdout=PIPE, stderr=STDOUT
    )
    out, _ = await asyncio.wait_for(done.communicate(), timeout=120)
    text = out.decode()
    assert done.returncode == 2, text
    assert "reelforge bootstrap" in text
    assert "is missing on the NATS server" in text
    assert "Traceback" not in text


def test_s3_identities_keep_each_service_to_its_buckets(overrides: dict[str, Any], store: ObjectStore, s3_keys) -> None:
    """The session's S3 server knows one identity per service (tests/conftest.py), scoped to the test buckets."""
    work, delivery = overrides["work_bucket"], overrides["delivery_bucket"]
    as_service = {name: ObjectStore.from_settings(CommonSettings(**overrides | s3_keys[name])) for name in SERVICES}

    as_service["generator"].put_bytes(work, "jobs/j/segments/001/frames/0000.png", b"frame")
    with pytest.raises(S3Error, match="AccessDenied"):
        as_service["generator"].put_bytes(delivery, "j/final.mp4", b"film")
    with pytest.raises(S3Error, match="AccessDenied"):
        as_service["qa"].put_bytes(delivery, "j/final.mp4", b"film")
    as_service["uploader"].put_bytes(delivery, "j/final.mp4", b"film")
    assert as_service["uploader"].get_bytes(work, "jobs/j/segments/001/frames/0000.png") == b"frame"
    # A service checks only the buckets it may see, and makes none.
    as_service["generator"].ensure_bucket(delivery)
    with pytest.raises(Exception, match="may not create it"):
        as_service["generator"].ensure_bucket(f"work-{uuid.uuid4().hex[:8]}")


def test_a_worker_refuses_the_built_in_s3_keys(overrides: dict[str, Any]) -> None:
    env = {"REELFORGE_NATS_URL": overrides["nats_url"], "REELFORGE_S3_ENDPOINT": overrides["s3_endpoint"]}
    result = CliRunner().invoke(app, ["worker", "generator"], env=env)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "built-in development keys" in lines[0], result.output


@pytest.mark.parametrize(
    ("variable", "placeholder"),
    [
        ("REELFORGE_NATS_PASSWORD", "change-me-to-a-long-random-string"),  # deploy/k8s/secrets.example.env, as shipped
        ("REELFORGE_S3_SECRET_KEY", "CHANGEME"),
        ("REELFORGE_S3_SECRET_KEY", "minioadmin"),  # MinIO's own default root password
        ("REELFORGE_API_TOKENS", "ci:change-me-to-a-third-long-random-string"),
        ("REELFORGE_API_TOKENS", "ops:5b0e7c1d9f2a,ci:password"),
    ],
)
def test_a_worker_refuses_a_placeholder_secret(variable: str, placeholder: str) -> None:
    """A secret copied from an example file unchanged stops a worker like the built-in keys do, naming the setting."""
    env = {  # servers that are not there: a worker that got past the check fails fast, not with this line
        "REELFORGE_NATS_URL": "nats://127.0.0.1:1",
        "REELFORGE_S3_ENDPOINT": "127.0.0.1:1",
        "REELFORGE_OUTAGE_TOLERANCE_S": "1",
        "REELFORGE_METRICS_PORT": "0",
        "REELFORGE_NATS_USER": "gateway",
        "REELFORGE_NATS_PASSWORD": uuid.uuid4().hex,
        "REELFORGE_S3_ACCESS_KEY": "reelforge-gateway",
        "REELFORGE_S3_SECRET_KEY": uuid.uuid4().hex,
        "REELFORGE_API_TOKENS": f"ci:{uuid.uuid4().hex}",
    } | {variable: placeholder}
    result = CliRunner().invoke(app, ["worker", "gateway"], env=env)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"{variable} is a placeholder" in lines[0], result.output
    assert placeholder not in result.output  # named, never echoed


def test_log_lines_never_carry_a_secret(captured_logs: io.StringIO) -> None:
    secrets = {"s3": "s3-secret-" + uuid.uuid4().hex, "nats": "nats-pw-" + uuid.uuid4().hex}
    register_secrets(CommonSettings(s3_secret_key=secrets["s3"], nats_user="qa", nats_password=secrets["nats"]))
    out = captured_logs
    log = structlog.get_logger("test")
    log.warning("s3.failed", error=f"signature for secret {secrets['s3']} rejected", password=secrets["nats"])
    try:
        raise ConnectionError(f"nats://qa:{secrets['nats']}@127.0.0.1:4222 refused")
    except ConnectionError:
        log.exception("nats.down")
        logging.getLogger("nats").error("reconnect to nats://qa:%s@host failed", secrets["nats"])
    text = out.getvalue()
    assert text.count("***") >= 4, text
    assert not [name for name, secret in secrets.items() if secret in text], text
    # A refused setting is named without echoing the others (pydantic would print every input value).
    with pytest.raises(ValueError, match="REELFORGE_NATS_TOKEN") as refused:
        CommonSettings(nats_user="qa", nats_password=secrets["nats"], nats_token=secrets["s3"])
    assert secrets["nats"] not in str(refused.value)
    assert secrets["s3"] not in str(refused.value)


def test_library_lines_are_json_lines_like_the_services_own(captured_logs: io.StringIO) -> None:
    """A container's log is one JSON object per line: the libraries' records (and their tracebacks) too."""
    structlog.get_logger("test").info("service.line", n=1)
    logging.getLogger("urllib3.connectionpool").warning("retrying %s", "put")
    try:
        raise OSError("no route")
    except OSError:
        logging.getLogger("nats").exception("reconnect failed")
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert [(line["level"], line.get("logger")) for line in lines] == [
        ("info", None),
        ("warning", "urllib3.connectionpool"),
        ("error", "nats"),
    ]
    assert lines[1]["event"] == "retrying put"
    assert "OSError: no route" in lines[2]["event"]
    assert all("timestamp" in line for line in lines)


STORYBOARD = {
    "title": "Least privilege",
    "output": {"width": 160, "height": 96},
    "segments": [{"id": "one", "prompt": "a field at noon", "frames": 2, "fps": 2}],
    "deliverables": {"crops": [], "thumbnail": False},
}


async def test_a_film_is_made_with_each_service_under_its_own_identity(
    secured_nats,
    overrides: dict[str, Any],
    store: ObjectStore,
    s3_keys,
    gitlab_standin,
    captured_logs: io.StringIO,
    tmp_path: Path,
) -> None:
    """The whole pipeline on a permissioned nats-server and per-service S3 identities; no secret in its logs."""
    server, passwords = secured_nats
    per_service = {name: {"nats_user": name, "nats_password": passwords[name], **s3_keys[name]} for name in SERVICES}
    per_service["uploader"] |= {  # every video goes to GitLab (the STAND-IN, tests/support/gitlab_standin.py): the token is used
        "gitlab_url": gitlab_standin.url,
        "gitlab_project": gitlab_standin.project,
        "gitlab_token": gitlab_standin.token,
        "gitlab_threshold_bytes": 0,
    }
    secrets = [passwords[name] for name in SERVICES] + [keys["s3_secret_key"] for keys in s3_keys.values()]
    api_token = "tok-" + uuid.uuid4().hex
    per_service["gateway"] |= {"api_tokens": f"ci:{api_token}", "api_auth": "on"}
    secrets += [gitlab_standin.token, api_token]
    logs = captured_logs
    admin = _as(overrides, "admin", passwords, server.url)
    # The stack's own settings are the admin's (local mode bootstraps with them); each service has its own user.
    base = overrides | {"nats_url": server.url, "nats_user": "admin", "nats_password": passwords["admin"]}
    base |= {"steps": 2, "outage_tolerance_s": 30}
    async with local_stack(tmp_path / "state", per_service=per_service, **base) as stack:
        nc = await nats.connect(server.url, user="admin", password=passwords["admin"])
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_completed(msg: Any) -> None:
            if not done.done():
                done.set_result(msg.data)

        await nc.subscribe(f"{admin.subject_prefix}.{JobCompleted.subject}", cb=on_completed)
        headers = {"Authorization": f"Bearer {api_token}"}
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, headers=headers) as client:
            response = await client.post("/v1/jobs", json=STORYBOARD)
            assert response.status_code == 202, response.text
        completed = JobCompleted.model_validate_json(await asyncio.wait_for(done, timeout=300))
        await nc.close()
        # uvicorn's own lines: a request it cannot parse (the token in its URL), and lines as its loggers write them
        host, port = stack.gateway_url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /v1/jobs?token={api_token} HTTP/1.1\r\nHost: x\r\nno colon {api_token}\r\n\r\n".encode())
        await writer.drain()
        await reader.read()
        writer.close()
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).warning('%s - "GET /v1/jobs?token=%s HTTP/1.1" 401', "127.0.0.1:5", api_token)
    assert completed.film_storage_provider == "gitlab"
    assert gitlab_standin.uploads
    text = logs.getvalue()
    assert '"event"' in text  # the run logged
    assert "Invalid HTTP request received" in text  # uvicorn's own warning went through the same handler
    assert text.count('"GET /v1/jobs?token=***') == 3, text[-3000:]  # uvicorn, uvicorn.error, uvicorn.access
    assert not [s for s in secrets if s in text]
