"""A real Prometheus (Debian's) scrapes the five services of a real run, each a `reelforge worker`
process with its own /metrics on a loopback port; after a job ran, every expression of the Grafana
dashboard returns data through Prometheus's query API, and the alert rules load.

No Grafana server can be installed on these machines: this and grafana-foundation-sdk's loader
(tests/deploy/test_static.py) are how the dashboard is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reelforge_shared.embedded import free_port
from support.factories import two_shots_yaml
from support.paths import ROOT

AUTH = {"Authorization": "Bearer loopback-test-token"}
SERVICES = ("gateway", "generator", "encoder", "qa", "uploader")
STORYBOARD = two_shots_yaml("Prometheus check")


def poll(what: str, check: Callable[[], Any], timeout: float, procs: dict[str, subprocess.Popen] | None = None) -> Any:
    """Ask a server until it says yes; a dead worker or the deadline fails the test with what it printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in (procs or {}).items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited {proc.returncode} while waiting for {what}")
        try:
            if result := check():
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # the interval between two questions to a server, not a wait for time to pass
    pytest.fail(f"{what}: not within {timeout:.0f} s")


@pytest.fixture
def workers(
    overrides: dict[str, Any], store: Any, s3_keys: dict[str, dict[str, str]], tmp_path: Path
) -> Iterator[dict[str, Any]]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "REELFORGE_NATS_URL": overrides["nats_url"],
        "REELFORGE_S3_ENDPOINT": overrides["s3_endpoint"],
        "REELFORGE_SUBJECT_PREFIX": overrides["subject_prefix"],
        "REELFORGE_WORK_BUCKET": overrides["work_bucket"],
        "REELFORGE_DELIVERY_BUCKET": overrides["delivery_bucket"],
        "REELFORGE_MODEL_CACHE_DIR": overrides["model_cache_dir"],
        "REELFORGE_GENERATOR_STEPS": "2",
        "REELFORGE_ENCODER_PRESET": "ultrafast",
        "REELFORGE_QA_MAX_ATTEMPTS": "1",
        "REELFORGE_ALLOW_TEST_MODEL": "1",
        "REELFORGE_LAG_POLL_S": "1",
        "REELFORGE_ACK_WAIT_S": "30",
        "REELFORGE_LOG_JSON": "true",
        "REELFORGE_API_TOKENS": "prometheus-test:loopback-test-token",
        "REELFORGE_GATEWAY_HOST": "127.0.0.1",
        "REELFORGE_GATEWAY_PORT": str(free_port()),
    }
    ports = {name: free_port() for name in SERVICES}
    procs = {}
    try:
        for name in SERVICES:
            log = (tmp_path / f"{name}.log").open("wb")
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "reelforge.cli", "worker", name],
                env=env
                | {
                    "REELFORGE_METRICS_PORT": str(ports[name]),
                    "REELFORGE_S3_ACCESS_KEY": s3_keys[name]["s3_access_key"],
                    "REELFORGE_S3_SECRET_KEY": s3_keys[name]["s3_secret_key"],
                },  # each service's own S3 identity
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        yield {"ports": ports, "procs": procs, "gateway": f"http://127.0.0.1:{env['REELFORGE_GATEWAY_PORT']}", "logs": tmp_path}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def prometheus(workers: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is needed: `make deploy-tools` installs it"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "deploy" / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "reelforge",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}} for name, port in workers["ports"].items()
                ],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(  # Debian's prometheus, loopback only
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        poll("prometheus ready", lambda: httpx.get(f"{url}/-/ready").status_code == 200, 30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.timeout(900)
def test_every_dashboard_expression_returns_data_after_a_job(workers: dict[str, Any], prometheus: str) -> None:
    procs = workers["procs"]
    for name, port in workers["ports"].items():
        poll(f"{name} healthy", lambda port=port: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, 240, procs)
    headers = {"Content-Type": "application/yaml"} | AUTH
    submitted = httpx.post(f"{workers['gateway']}/v1/jobs", content=STORYBOARD, headers=headers)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()["job_id"]

    def finished() -> dict | None:
        status = httpx.get(f"{workers['gateway']}/v1/jobs/{job}", headers=AUTH).json()
        return status if status["status"] in {"completed", "failed", "cancelled"} else None

    assert poll("job finished", finished, 480, procs)["status"] == "completed"

    targets = httpx.get(f"{prometheus}/api/v1/targets").json()["data"]["activeTargets"]
    assert {t["labels"]["service"] for t in targets} == set(SERVICES)
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "reelforge.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]

    def without_data() -> list[str]:
        empty = []
        for expr in exprs:
            reply = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}).json()
            assert reply["status"] == "success", (expr, reply)
            if not reply["data"]["result"]:
                empty.append(expr)
        return empty

    # Rates need two scrapes after the job: ask until every expression has data, at most a minute.
    deadline = time.monotonic() + 60
    while (empty := without_data()) and time.monotonic() < deadline:
        time.sleep(1)  # the next scrape is a second away
    assert not empty, f"dashboard expressions without data: {empty}"

    rules = httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
    loaded = {rule["name"] for group in rules for rule in group["rules"]}
    groups = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"]
    written = {rule["alert"] for group in groups for rule in group["rules"]}
    assert loaded == written
    up = httpx.get(f"{prometheus}/api/v1/query", params={"query": 'up{job="reelforge"}'}).json()["data"]["result"]
    assert sorted(r["metric"]["service"] for r in up if r["value"][1] == "1") == sorted(SERVICES)
