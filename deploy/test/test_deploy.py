"""`make test-deploy`: every image built, the compose stack run for real on Docker, one job through it.

Steps: start dockerd when none answers (deploy/test/dockerd.sh), make the base image with debootstrap
(deploy/test/base-image.sh, cached), fetch the files of the hashed locks into a wheelhouse on the host (cached by the locks),
build the five images with docker-compose, check them (no torch outside the generator, non-root,
exec-form entry point, HEALTHCHECK), start the stack with host networking
(docker-compose.yml + deploy/test/compose.host.yml), submit a storyboard through the gateway, wait for
the job to complete, check least privilege on the running servers (NATS refuses a connection without
credentials, the generator's S3 identity may not write the delivery bucket), check that Prometheus
scraped every service and that every expression of the Grafana dashboard returns data, stop the
workers with SIGTERM (each must exit 0), tear everything down.

What differs from production, because no registry can be reached from these machines: the base image
is Debian bookworm made with debootstrap (python:3.11-slim in production), wheels come from the host,
SeaweedFS's S3 server stands in for MinIO (with the same per-service identities, from
reelforge_shared.access, written to out/s3.test.json; minio-init makes the buckets with the gateway
image's minio client instead of mc), nats-server and prometheus are the host's binaries mounted
into the base image, the generator runs the CPU build, and Grafana is left out (the dashboard's
expressions are checked against Prometheus instead). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("REELFORGE_DEPLOY_CACHE", Path.home() / ".cache" / "reelforge-deploy"))
WHEELHOUSE = ROOT / "deploy" / "docker" / "wheelhouse"
BASE_IMAGE = "reelforge-base:bookworm"
PROJECT = "reelforge-test"
SOURCES = ["-f", "docker-compose.yml", "-f", "deploy/test/compose.host.yml"]
RENDERED = ROOT / "out" / "compose.test.yml"
COMPOSE = ["docker-compose", "-p", PROJECT, "-f", str(RENDERED)]
WORKERS = {"gateway": 19101, "generator-cpu": 19102, "encoder": 19103, "qa": 19104, "uploader": 19105}
INFRA = ["nats", "bootstrap", "minio", "minio-init", "prometheus"]
PUBLISHED = {"gateway", "grafana"}  # the only services docker-compose.yml publishes (on 127.0.0.1 by default)
# A listener of each running service the binding check must see (deploy/test/compose.host.yml's ports).
LISTENERS = [("nats", 14222), ("minio", 18333), ("prometheus", 19090), ("gateway", 18081), *WORKERS.items()]
GATEWAY = "http://127.0.0.1:18081"
AUTH = {"Authorization": "Bearer loopback-test-token"}  # REELFORGE_API_TOKENS in deploy/test/compose.host.yml
PROMETHEUS = "http://127.0.0.1:19090"
STORYBOARD = """
title: test-deploy
output: {width: 256, height: 144}
characters:
  hero: {description: a man in a blue shirt, seed: 1000}
segments:
  - {id: one, prompt: walks, characters: [hero], frames: 3, fps: 3}
  - {id: two, prompt: sits, characters: [hero], frames: 3, fps: 3, transition: {type: dissolve, duration: 0.5}}
"""
# Every secret docker-compose.yml asks for (.env.example), test values: loopback only.
SECRET_KEYS = [
    line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if line and not line.startswith("#")
]
SECRETS = {key: f"test-deploy-{key.lower().replace('_', '-')}" for key in SECRET_KEYS}
SECRETS["REELFORGE_API_TOKENS"] = "deploy-test:loopback-test-token"
started = time.monotonic()


def check(condition: object, message: object) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def say(message: str) -> None:
    print(f"[test-deploy {time.monotonic() - started:6.1f}s] {message}", flush=True)


def run(*args: str, env: dict[str, str] | None = None, capture: bool = False, timeout: float = 900) -> str:
    done = subprocess.run(  # noqa: S603 - argument lists this script builds, no shell
        args,
        cwd=ROOT,
        env=env,
        text=True,
        timeout=timeout,
        check=False,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    )
    if done.returncode != 0:
        raise SystemExit(f"FAILED ({done.returncode}): {' '.join(args)}\n{done.stdout or ''}")
    return done.stdout or ""


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; the deadline makes a hung stack a failure."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        time.sleep(every)  # polling a server's state, not synchronising on time
    raise SystemExit(f"FAILED: {what} not within {timeout:.0f} s (last error: {last!r})")


def http_json(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    check(url.startswith("http://127.0.0.1:"), f"not a loopback URL: {url}")  # test traffic stays on loopback
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL, checked above
        url,
        data=body,
        headers=headers or {},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a loopback URL, checked above
        return json.loads(response.read())


def wheelhouse() -> None:
    """The files of every image's hashed lock (deploy/docker/requirements/) and torch, fetched once per set of locks.

    Downloaded, not built: the images install them with --require-hashes, so each file must be the one
    the lock names.
    """
    locks = sorted((ROOT / "deploy" / "docker" / "requirements").glob("*.txt"))
    key = hashlib.sha256(b"".join(p.read_bytes() for p in locks) + b"torch==2.13.0").hexdigest()[:16]
    stamp = WHEELHOUSE / f".built-{key}"
    if stamp.exists():
        say(f"wheelhouse up to date ({key})")
        return
    for old in [*WHEELHOUSE.glob("*.whl"), *WHEELHOUSE.glob("*.tar.gz"), *WHEELHOUSE.glob(".built-*")]:
        old.unlink()
    say("fetching the wheelhouse (once per change of the lock files)")
    pip = str(VENV_BIN / "pip")
    for lock in locks:
        run(pip, "download", "--quiet", "--no-deps", "--require-hashes", "-r", str(lock), "--dest", str(WHEELHOUSE))
    run(pip, "download", "--quiet", "--dest", str(WHEELHOUSE), "torch==2.13.0")  # the CPU build and its dependencies
    stamp.touch()


def test_bin() -> Path:
    """nats-server and weed from their wheels, prometheus from Debian: mounted into the base image."""
    folder = CACHE / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    sources = {
        "nats-server": VENV_BIN / "nats-server",
        "weed": VENV_BIN / "weed",
        "prometheus": Path(shutil.which("prometheus") or "/nonexistent"),
    }
    for name, source in sources.items():
        check(source.is_file(), f"{name} not found ({source})")
        target = folder / name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            shutil.copy2(source, target)
    return folder


def render_compose(env: dict[str, str]) -> None:
    """docker-compose.yml + the test override, merged, without published ports.

    On the host network a published port means nothing, and Docker refuses one; compose v1 (Debian's)
    cannot remove a key in an override file, so the merged file is written with the ports taken out.
    """
    import yaml

    merged = yaml.safe_load(run("docker-compose", "-p", PROJECT, *SOURCES, "config", env=env, capture=True))
    for name, service in merged["services"].items():
        check(service.get("network_mode") == "host", f"{name} is not on the host network in the test override")
        service.pop("ports", None)
    RENDERED.parent.mkdir(exist_ok=True)
    RENDERED.write_text(yaml.safe_dump(merged, sort_keys=False))


def write_s3_identities() -> None:
    """SeaweedFS's -s3.config: the same per-service identities minio-init gives MinIO, and the root one."""
    sys.path.insert(0, str(ROOT / "shared" / "src"))
    from reelforge_shared.access import SERVICES, seaweedfs_identities

    keys = {s: (f"reelforge-{s}", SECRETS[f"REELFORGE_S3_SECRET_KEY_{s.upper()}"]) for s in SERVICES}
    keys["admin"] = ("reelforge-admin", SECRETS["MINIO_ROOT_PASSWORD"])
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "s3.test.json").write_text(json.dumps(seaweedfs_identities(keys, "reelforge-work", "f1-video-clips")))


def check_least_privilege() -> None:
    """On the running servers: no anonymous NATS client, and the generator's S3 identity cannot write deliveries."""
    import asyncio

    import nats
    from minio import Minio
    from minio.error import S3Error

    async def anonymous() -> str | None:
        try:
            nc = await nats.connect("nats://127.0.0.1:14222", allow_reconnect=False, connect_timeout=5)
        except Exception as exc:  # noqa: BLE001 - any refusal will do; what matters is that it is one
            return repr(exc)
        await nc.close()
        return None

    refused = asyncio.run(anonymous())
    check(refused and "authorization" in refused.lower(), f"nats-server took a client without credentials: {refused}")
    generator = Minio("127.0.0.1:18333", "reelforge-generator", SECRETS["REELFORGE_S3_SECRET_KEY_GENERATOR"], secure=False)
    try:
        generator.put_object("f1-video-clips", "least-privilege.txt", io.BytesIO(b"x"), 1)
        raise SystemExit("FAILED: the generator's S3 identity wrote to the delivery bucket")
    except S3Error as exc:
        check(exc.code == "AccessDenied", exc)
    say("least privilege: NATS refuses an anonymous client, the generator may not write the delivery bucket")


def check_listeners(env: dict[str, str]) -> None:
    """Nothing of the stack listens beyond loopback but the gateway (and Grafana), read from the host network's
    own socket table (`ss -ltnp`: the containers share it) and Docker's port bindings; nothing is connected to."""
    import ipaddress

    owner: dict[int, str] = {}  # host pid -> compose service
    for service in [*INFRA, *WORKERS]:
        for container in run(*COMPOSE, "ps", "-q", service, env=env, capture=True).split():
            state = json.loads(run("docker", "inspect", container, capture=True))[0]
            if not state["State"]["Running"]:
                continue  # minio-init has done its work
            bindings = state["HostConfig"].get("PortBindings") or {}
            published = [b for bs in (state["NetworkSettings"].get("Ports") or {}).values() for b in bs or []]
            for binding in [*published, *(b for bs in bindings.values() for b in bs or [])]:
                loopback = ipaddress.ip_address(binding["HostIp"] or "0.0.0.0").is_loopback  # noqa: S104 - an address read
                check(loopback or service in PUBLISHED, f"{service} publishes {binding} beyond loopback")
            check(not run("docker", "port", container, capture=True).strip(), f"{service} publishes a port")
            for line in run("docker", "top", container, "-eo", "pid", capture=True).splitlines()[1:]:
                owner[int(line)] = service
    seen: dict[str, set[int]] = {}
    for line in run("ss", "-ltnpH", capture=True).splitlines():
        fields = line.split()
        address, _, port = fields[3].rpartition(":")
        for pid in (int(p) for p in re.findall(r"pid=(\d+)", line)):
            if pid in owner:
                service = owner[pid]
                seen.setdefault(service, set()).add(int(port))
                host = None if address == "*" else ipaddress.ip_address(address.strip("[]").split("%")[0])
                beyond = host is None or not host.is_loopback
                check(not beyond or service in PUBLISHED, f"{service} listens on {fields[3]}, beyond loopback")
    for service, port in LISTENERS:  # the check saw the stack itself, not an empty table
        check(port in seen.get(service, set()), f"{service} not seen listening on {port}: {seen}")
    say(f"listeners: {sum(map(len, seen.values()))} sockets of {len(seen)} services, all on loopback; nothing published")


def check_images() -> None:
    for service in WORKERS:
        image = f"reelforge-{service}:local"
        config = json.loads(run("docker", "image", "inspect", image, capture=True))[0]["Config"]
        check(config["User"] == "10001:10001", (image, config["User"]))
        check(config["Entrypoint"] == ["reelforge", "worker"], (image, config["Entrypoint"]))
        check(config["Healthcheck"]["Test"][0] == "CMD", (image, config["Healthcheck"]))
        torch = "generator" in service
        probe = "import importlib.util as u, sys; sys.exit(0 if (u.find_spec('torch') is None) == (sys.argv[1] == 'no') else 1)"
        run("docker", "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", probe, "yes" if torch else "no")
        say(f"{image}: user 10001, exec-form entry point, HEALTHCHECK, torch {'present' if torch else 'absent'}")


def check_prometheus() -> None:
    def all_up() -> bool:
        targets = http_json(f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]
        up = {t["labels"]["service"] for t in targets if t["health"] == "up"}
        return up == {"gateway", "generator", "encoder", "qa", "uploader"}

    wait_for("Prometheus scraping all five services", all_up, timeout=60)
    say("Prometheus scraped every service (targets up)")
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "reelforge.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]

    def every_expression_has_data() -> list[str] | None:
        empty = []
        for expr in exprs:
            query = urllib.parse.urlencode({"query": expr})
            result = http_json(f"{PROMETHEUS}/api/v1/query?{query}")["data"]["result"]
            if not result:
                empty.append(expr)
        if empty:
            print("  still without data:", *empty, sep="\n    ", flush=True)
            return None
        return exprs

    wait_for("every dashboard expression returning data", every_expression_has_data, timeout=90, every=5)
    say(f"all {len(exprs)} dashboard expressions return data from Prometheus")


def main() -> None:
    if shutil.which("docker-compose") is None or shutil.which("dockerd") is None:
        raise SystemExit("docker-compose and dockerd are needed: `make deploy-tools` installs them")
    started = Path(tempfile.mkdtemp()) / "dockerd.pid"  # written only when this run starts the engine
    run("bash", "deploy/test/dockerd.sh", str(started))
    try:
        stack()
    finally:
        if started.exists():  # leave the machine as we found it: no engine we started keeps running
            pid = int(started.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(60):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(1)  # dockerd stops within seconds once its containers are gone
            say("dockerd stopped")
    print("1 passed, 0 failed")


def stack() -> None:
    run("bash", "deploy/test/base-image.sh", BASE_IMAGE)
    wheelhouse()
    env = dict(os.environ, REELFORGE_TEST_BIN=str(test_bin())) | SECRETS
    write_s3_identities()
    render_compose(env)
    run(*COMPOSE, "down", "-v", "--remove-orphans", "-t", "5", env=env)  # what a killed earlier run left
    try:
        say("building the images")
        run(*COMPOSE, "build", *WORKERS, env=env)
        check_images()
        say("starting the stack (host network, loopback ports)")
        run(*COMPOSE, "--profile", "cpu", "up", "-d", *INFRA, *WORKERS, env=env)
        for service, port in WORKERS.items():
            healthz = f"http://127.0.0.1:{port}/healthz"
            wait_for(f"{service} healthy", lambda healthz=healthz: http_json(healthz).get("ok"), timeout=300)
        say("all five services report healthy")
        job = http_json(f"{GATEWAY}/v1/jobs", STORYBOARD.encode(), {"Content-Type": "application/yaml"} | AUTH)
        say(f"submitted job {job['job_id']} through the gateway")

        def finished() -> dict | None:
            status = http_json(f"{GATEWAY}/v1/jobs/{job['job_id']}", headers=AUTH)
            return status if status["status"] in {"completed", "failed", "cancelled"} else None

        status = wait_for("job completion", finished, timeout=420, every=2)
        check(status["status"] == "completed", json.dumps(status, indent=2)[:3000])
        say(f"job completed: {status.get('film_key')}")
        check_least_privilege()
        check_listeners(env)
        check_prometheus()
        say("stopping the workers with SIGTERM")
        run(*COMPOSE, "stop", "-t", "60", *WORKERS, env=env)
        for service in WORKERS:
            ids = run(*COMPOSE, "ps", "-q", service, env=env, capture=True).split()
            code = run("docker", "inspect", "-f", "{{.State.ExitCode}}", *ids, capture=True).split()
            check(code == ["0"], f"{service} exited {code} on SIGTERM (137 would mean it ignored the signal)")
        say("every worker drained and exited 0 on SIGTERM")
    except BaseException:
        subprocess.run([*COMPOSE, "logs", "--no-color", "--tail", "40"], cwd=ROOT, env=env, check=False)  # noqa: S603 - fixed argv
        raise
    finally:
        run(*COMPOSE, "down", "-v", "--remove-orphans", "-t", "5", env=env)
    say("passed; stack torn down")


if __name__ == "__main__":
    main()
