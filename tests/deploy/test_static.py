"""Deploy artifacts checked with the tools a user runs them with: promtool, docker-compose, check-jsonschema,
kubectl kustomize + kubernetes-validate, cloudcoil's KEDA models, grafana-foundation-sdk, nats-server -t.

No Grafana server can be installed on these machines: the dashboard is checked by loading it with
grafana-foundation-sdk here and by querying each of its expressions on a real Prometheus
(tests/deploy/test_prometheus.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reelforge.stack import SERVICE_MODULES, env_name, service_module
from reelforge_shared.metrics import catalogue
from support.paths import ROOT

DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
OVERLAYS = sorted(p.name for p in (DEPLOY / "k8s" / "overlays").iterdir() if p.is_dir())
NATS_JETSTREAM_KEYS = {"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold", "activationLagThreshold"}


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)  # the venv's first (nats-server 2.15 from its wheel)
    assert found, f"{name} is not installed: `make deploy-tools` installs it"
    return found


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def known_variables() -> set[str]:
    names = {"REELFORGE_WORKER"}  # the CLI's `worker NAME` argument, set in each image
    for name in SERVICE_MODULES:
        names |= {env_name(f, info) for f, info in service_module(name).Settings.model_fields.items()}
    return names


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(reelforge_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=[\s{\[)]|$)", expr))


def catalogued() -> set[str]:
    return {row["name"] for row in catalogue()}


# --- Prometheus rules ---------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    run(tool("promtool"), "check", "rules", "alerts.yml", cwd=DEPLOY / "prometheus")
    out = run(tool("promtool"), "test", "rules", "alerts.test.yml", cwd=DEPLOY / "prometheus")
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_unit_test_and_a_runbook_entry() -> None:
    rules = [r for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case.get("exp_alerts")}
    operations = (ROOT / "docs" / "operations.md").read_text()
    for rule in rules:
        assert rule["alert"] in tested, f"{rule['alert']} has no test that makes it fire"
        assert f"### {rule['alert']}" in operations, f"{rule['alert']} has no runbook entry in docs/operations.md"
        assert metric_names_in(rule["expr"]) <= catalogued(), rule["expr"]


def test_prometheus_config_passes_promtool() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
    checked = ROOT / "out" / "prometheus-check.yml"
    checked.parent.mkdir(exist_ok=True)
    checked.write_text(yaml.safe_dump(config))
    run(tool("promtool"), "check", "config", str(checked))


# --- docker compose ------------------------------------------------------------------------------


def compose_secrets() -> dict[str, str]:
    """A value for every secret docker-compose.yml asks for (.env.example)."""
    keys = re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    return {key: f"static-{key.lower()}" for key in keys}


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "deploy/test/compose.host.yml"]])
def test_compose_passes_compose_spec_and_docker_compose_config(files: list[str]) -> None:
    for file in files:
        run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", file)
    env = ["REELFORGE_TEST_BIN=/nonexistent", *(f"{k}={v}" for k, v in compose_secrets().items())]
    args = [a for f in files for a in ("-f", f)]
    run("env", *env, tool("docker-compose"), *args, "config", "-q")


def test_compose_runs_each_service_under_its_own_nats_user_and_s3_identity() -> None:
    from reelforge_shared.access import password_variable
    from reelforge_shared.flow import SERVICES

    secrets = compose_secrets()
    env = ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", *(f"{k}={v}" for k, v in secrets.items())]
    merged = yaml.safe_load(run(*env, tool("docker-compose"), "-f", "docker-compose.yml", "config").stdout)["services"]
    for service in SERVICES:
        for name in [service, "generator-cpu"] if service == "generator" else [service]:
            got = merged[name]["environment"]
            assert got["REELFORGE_NATS_USER"] == service, name
            assert got["REELFORGE_NATS_PASSWORD"] == secrets[password_variable(service)], name
            assert got["REELFORGE_S3_ACCESS_KEY"] == f"reelforge-{service}", name
            assert got["REELFORGE_S3_SECRET_KEY"] == secrets[f"REELFORGE_S3_SECRET_KEY_{service.upper()}"], name
            assert secrets["MINIO_ROOT_PASSWORD"] not in json.dumps(got), f"{name} holds the MinIO root password"
            assert merged[name]["depends_on"]["bootstrap"] == {"condition": "service_completed_successfully"}, name
    # NATS's admin password: nats-server and the one-shot bootstrap (streams and KV buckets), no service.
    admin = secrets[password_variable("admin")]
    assert sorted(n for n, s in merged.items() if admin in json.dumps(s.get("environment", {}))) == ["bootstrap", "nats"]
    assert merged["bootstrap"]["entrypoint"] == ["reelforge", "bootstrap"]
    assert merged["bootstrap"]["environment"]["REELFORGE_NATS_USER"] == "admin"
    assert all(
        merged["nats"]["environment"][password_variable(u)] == secrets[password_variable(u)]
        for u in [*SERVICES, "downstream", "admin"]
    )
    init = merged["minio-init"]
    assert init["entrypoint"] == ["/bin/sh", "/init/init.sh"]
    script = (DEPLOY / "minio" / "init.sh").read_text()
    assert "mc admin policy attach" in script
    assert "/init/policies/$service.json" in script
    for key in (f"REELFORGE_S3_SECRET_KEY_{service.upper()}" for service in SERVICES):
        assert init["environment"][key] == secrets[key]
    # Without the secrets compose refuses to start, naming one.
    refused = subprocess.run(
        [*env[:3], tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0
    assert "set in .env" in refused.stdout + refused.stderr


@pytest.mark.parametrize("placeholder", ["change-me", "minioadmin", ""])
def test_compose_refuses_a_placeholder_minio_or_grafana_password_before_either_starts(placeholder: str) -> None:
    env = ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", *(f"{k}={v}" for k, v in compose_secrets().items())]
    merged = yaml.safe_load(run(*env, tool("docker-compose"), "-f", "docker-compose.yml", "config").stdout)["services"]
    for name in ("minio", "grafana"):
        assert merged[name]["depends_on"]["secrets-check"] == {"condition": "service_completed_successfully"}, name
    check = merged["secrets-check"]
    assert check["network_mode"] == "none"
    assert set(check["environment"]) == {"MINIO_ROOT_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    command = [str(BIN / check["entrypoint"][0]), *check["entrypoint"][1:]]
    for variable in check["environment"]:  # the container's command, with the environment compose gives it
        environment = {"PATH": "/usr/bin:/bin", **check["environment"], variable: placeholder}
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, (variable, done.stdout, done.stderr)
        assert f"refusing to start: {variable} is" in " ".join((done.stdout + done.stderr).split())
    environment = {"PATH": "/usr/bin:/bin", **check["environment"]}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_publishes_only_the_gateway_and_grafana_on_loopback_by_default() -> None:
    """NATS, MinIO and Prometheus stay on the compose network; what is published binds 127.0.0.1 unless told."""
    env = ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", *(f"{k}={v}" for k, v in compose_secrets().items())]
    merged = yaml.safe_load(run(*env, tool("docker-compose"), "-f", "docker-compose.yml", "config").stdout)["services"]
    published = {name: service["ports"] for name, service in merged.items() if service.get("ports")}
    assert published == {"gateway": ["127.0.0.1:8080:8080/tcp"], "grafana": ["127.0.0.1:3000:3000/tcp"]}
    assert not [name for name, service in merged.items() if service.get("network_mode") == "host"]
    # An operator who wants them on a LAN says so, for both at once.
    lan = yaml.safe_load(
        run(*env, "PUBLISH_ADDRESS=192.0.2.10", tool("docker-compose"), "-f", "docker-compose.yml", "config").stdout
    )
    assert [p for s in lan["services"].values() for p in s.get("ports", [])] == [
        "192.0.2.10:8080:8080/tcp",
        "192.0.2.10:3000:3000/tcp",
    ]
    for name in ("gateway", "generator", "generator-cpu", "encoder", "qa", "uploader"):  # as the pods in Kubernetes
        worker = merged[name]
        assert worker["read_only"] is True, name
        assert worker["cap_drop"] == ["ALL"], name
        assert worker["security_opt"] == ["no-new-privileges:true"], name
        assert "/tmp" in worker["tmpfs"], name  # noqa: S108 - a path in the compose file
    # No lifecycle API (an open /-/quit and /-/reload), no anonymous Grafana, its admin password from .env.
    assert not [arg for arg in merged["prometheus"]["command"] if "lifecycle" in arg]
    grafana = merged["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == compose_secrets()["GRAFANA_ADMIN_PASSWORD"]


def test_env_files_with_secrets_are_ignored_by_git_and_the_example_is_not() -> None:
    for secret_file in (".env", ".env.production", "deploy/k8s/secrets.env", "deploy/k8s/secrets/gateway.env"):
        ignored = subprocess.run([tool("git"), "check-ignore", "-q", secret_file], cwd=ROOT, check=False)
        assert ignored.returncode == 0, secret_file
    assert subprocess.run([tool("git"), "check-ignore", "-q", ".env.example"], cwd=ROOT, check=False).returncode == 1
    # The example holds no value: each one is written by the operator (compose refuses an empty one).
    assert re.findall(r"^[A-Z0-9_]+=(.+)$", (ROOT / ".env.example").read_text(), re.M) == []


def test_shipped_minio_policies_and_helm_users_are_the_generated_ones() -> None:
    from reelforge_shared.access import minio_policy
    from reelforge_shared.flow import SERVICES

    minio = yaml.safe_load((DEPLOY / "k8s" / "helm" / "minio-values.yaml").read_text())
    policies = {p["name"]: p["statements"] for p in minio["policies"]}
    users = {u["accessKey"]: u for u in minio["users"]}
    for service in SERVICES:
        policy = minio_policy(service, "reelforge-work", "f1-video-clips")
        assert json.loads((DEPLOY / "minio" / "policies" / f"{service}.json").read_text()) == policy
        wanted = [{"resources": st["Resource"], "actions": st["Action"]} for st in policy["Statement"]]
        assert policies[f"reelforge-{service}"] == wanted, service
        user = users[f"reelforge-{service}"]
        assert user["policy"] == f"reelforge-{service}"
        assert user["existingSecretKey"] == service


def test_compose_gives_each_service_a_healthcheck_and_waits_for_healthy_peers() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        if name in {"minio-init", "bootstrap", "secrets-check"}:  # one-shot: the others wait for it to complete
            continue
        assert "healthcheck" in service, name
        for peer, condition in service.get("depends_on", {}).items():
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"}, (name, peer)
    gpu = services["generator"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia"
    assert gpu["capabilities"] == ["gpu"]
    assert "cpu" in services["generator-cpu"]["profiles"]
    assert "sync_interval: always" in (DEPLOY / "nats" / "nats.conf").read_text()


def test_nats_config_is_valid_for_nats_server_and_needs_every_password() -> None:
    from reelforge_shared.access import password_variable
    from reelforge_shared.flow import SERVICES

    passwords = [f"{password_variable(u)}=pw-{u}" for u in [*SERVICES, "downstream", "admin"]]
    run("env", *passwords, tool("nats-server"), "-c", str(DEPLOY / "nats" / "nats.conf"), "-t")
    assert "include ./auth.conf" in (DEPLOY / "nats" / "nats.conf").read_text()
    conf = str(DEPLOY / "nats" / "nats.conf")
    missing = subprocess.run(
        ["/usr/bin/env", *passwords[1:], tool("nats-server"), "-c", conf, "-t"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode != 0
    assert password_variable(next(iter(SERVICES))) in missing.stdout + missing.stderr


def test_every_variable_in_compose_and_configmap_is_a_setting_and_the_required_ones_are_there() -> None:
    known = known_variables()
    compose = (ROOT / "docker-compose.yml").read_text()
    base = DEPLOY / "k8s" / "base"
    configmap = yaml.safe_load((base / "configmap.yaml").read_text())["data"]
    secret_keys = set(re.findall(r"^(REELFORGE_\w+)=", (DEPLOY / "k8s" / "secrets.example.env").read_text(), re.M))
    from reelforge_shared.access import password_variable
    from reelforge_shared.flow import SERVICES

    # nats-server's and minio-init's variables: each service's NATS password and S3 secret key (not settings)
    per_service = {password_variable(u) for u in [*SERVICES, "downstream", "admin"]}
    per_service |= {f"REELFORGE_S3_SECRET_KEY_{s.upper()}" for s in SERVICES}
    in_compose = set(re.findall(r"\b(REELFORGE_[A-Z0-9_]+):(?!\?)", compose))
    assert in_compose <= known | per_service, in_compose - known - per_service
    assert set(configmap) <= known, set(configmap) - known
    assert secret_keys <= known
    required = {
        "REELFORGE_NATS_URL",
        "REELFORGE_S3_ENDPOINT",
        "REELFORGE_S3_ACCESS_KEY",
        "REELFORGE_S3_SECRET_KEY",
        "REELFORGE_GATEWAY_HOST",
        "REELFORGE_GATEWAY_PORT",
        "REELFORGE_METRICS_PORT",
    }
    assert required <= in_compose
    assert required | {"REELFORGE_NATS_PASSWORD"} <= set(configmap) | secret_keys
    assert "REELFORGE_S3_SECRET_KEY" not in configmap, "secrets belong in the Secret"
    for name in SERVICE_MODULES:  # each service reads its own Secret and names its own NATS user
        [deployment] = [d for d in yaml.safe_load_all((base / f"{name}.yaml").read_text()) if d and d["kind"] == "Deployment"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert {"secretRef": {"name": f"reelforge-{name}"}} in container["envFrom"], name
        assert {"name": "REELFORGE_NATS_USER", "value": name} in container["env"], name
        assert not [e for e in container["env"] if "valueFrom" in e], f"{name}: secrets come from its own Secret"


# --- images ------------------------------------------------------------------------------------------------


PINNED = re.compile(r"^[\w./-]+:(?!latest\b)[\w.-]*\d[\w.-]*@sha256:[0-9a-f]{64}$")  # name:version@sha256:digest


def test_images_are_pinned_by_version_and_digest_and_none_is_latest() -> None:
    """Third-party images by version and digest; ours built here (never pulled); the base by digest; no `:latest`."""
    for file in ("docker-compose.yml", "deploy/test/compose.host.yml"):
        for name, service in yaml.safe_load((ROOT / file).read_text())["services"].items():
            image = service.get("image")
            if image is None:
                continue
            built_here = image.startswith("reelforge-") and image.endswith(":local") or image == "reelforge-base:bookworm"
            assert built_here or PINNED.match(image), f"{file}: {name} runs {image}, not name:version@sha256:digest"
    [base] = re.findall(r"^ARG BASE_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert PINNED.match(base), base
    assert base.startswith("python:3.11."), base
    for overlay in OVERLAYS:
        for doc in rendered(overlay):
            if doc["kind"] in WORKLOAD_KINDS:
                for container in pod_spec(doc)["spec"]["containers"]:
                    tag = container["image"].rpartition(":")[2]
                    assert "/" not in tag, (overlay, container["image"])
                    assert tag not in {"", "latest"}, (overlay, container["image"])
    nats = yaml.safe_load((DEPLOY / "k8s" / "helm" / "nats-values.yaml").read_text())["container"]["image"]
    minio = yaml.safe_load((DEPLOY / "k8s" / "helm" / "minio-values.yaml").read_text())
    compose = (ROOT / "docker-compose.yml").read_text()
    for image in (nats, minio["image"], minio["mcImage"]):  # the charts run the releases compose pins
        assert f"{image['repository'].removeprefix('quay.io/')}:{image['tag']}@sha256:" in compose, image
    # `:latest` nowhere in what builds or deploys (a moving tag: the next pull may run other code).
    files = [ROOT / "Dockerfile", ROOT / "docker-compose.yml", ROOT / "Makefile", *DEPLOY.rglob("*.y*ml"), *DEPLOY.rglob("*.sh")]
    assert not [str(f) for f in files if re.search(r":latest\b", f.read_text())]


# --- Kubernetes ----------------------------------------------------------------------------------


def rendered(overlay: str) -> list[dict]:
    out = run(tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_kubernetes_validate_strict(overlay: str, tmp_path: Path) -> None:
    docs = rendered(overlay)
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run(
        [tool("kubernetes-validate"), "--strict", str(manifest)], capture_output=True, text=True, timeout=120, check=False
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    unknown = re.findall(r"Couldn't find schema for kind (\w+) with api version (\S+)", out)
    assert all(api.startswith("keda.sh/") for _, api in unknown), f"unknown kinds: {unknown}"
    assert out.count("passed for resource") == sum(1 for d in docs if not d["apiVersion"].startswith("keda.sh/"))
    assert "WARN" not in out.replace("WARN", "", len(unknown)), out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_objects_validate_with_cloudcoil_and_name_real_consumers(overlay: str) -> None:
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    docs = rendered(overlay)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for doc in (d for d in docs if d["apiVersion"].startswith("keda.sh/")):
        assert doc["kind"] == "ScaledObject"
        model = ScaledObject.model_validate(doc)
        # cloudcoil ignores unknown fields: compare what it kept with what was written.
        assert model.model_dump(by_alias=True, exclude_none=True, mode="json")["spec"] == doc["spec"]
        target = doc["spec"]["scaleTargetRef"]["name"]
        assert target in deployments, "KEDA owns the count"
        assert "replicas" not in deployments[target]["spec"], "KEDA owns the count"
        for key in ("minReplicaCount", "maxReplicaCount", "cooldownPeriod"):
            assert key in doc["spec"]
        service = target.removeprefix("reelforge-")
        for trigger in doc["spec"]["triggers"]:
            assert trigger["type"] == "nats-jetstream"
            meta = trigger["metadata"]
            assert NATS_JETSTREAM_KEYS <= set(meta), NATS_JETSTREAM_KEYS - set(meta)
            assert set(meta) <= NATS_JETSTREAM_KEYS | {"useHttps"}, set(meta) - NATS_JETSTREAM_KEYS
            assert int(meta["lagThreshold"]) > 0
            assert int(meta["activationLagThreshold"]) >= 0
            assert re.fullmatch(r"[\w.-]+:\d+", meta["natsServerMonitoringEndpoint"])
            assert meta["stream"] == "REELFORGE"  # Bus.stream for the default prefix
            assert meta["consumer"].startswith(f"{service}-")  # the runner's durable: {service}-{subject}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_have_probes_limits_grace_and_the_generator_sits_on_l40s(overlay: str) -> None:
    docs = rendered(overlay)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {f"reelforge-{s}" for s in SERVICE_MODULES}
    pdbs = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert pdbs == set(deployments)
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert pod["spec"]["terminationGracePeriodSeconds"] >= 60
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    generator = deployments["reelforge-generator"]["spec"]["template"]["spec"]
    assert generator["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L40S"}
    assert generator["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in generator["tolerations"]
    assert generator["terminationGracePeriodSeconds"] >= max(
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] for d in deployments.values()
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_waits_for_the_bootstrap_jobs_stream_as_its_own_identity_before_starting(overlay: str) -> None:
    """An init container runs `reelforge wait-for-stream SERVICE` (tests/shared/test_wait_for_stream.py) with the
    service's own image, secret and NATS user: the service starts once the bootstrap Job is done, not restarting."""
    deployments = [d for d in rendered(overlay) if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {f"reelforge-{s}" for s in SERVICE_MODULES}
    for deployment in deployments:
        service = deployment["metadata"]["name"].removeprefix("reelforge-")
        spec = deployment["spec"]["template"]["spec"]
        main = spec["containers"][0]
        [wait] = spec["initContainers"]
        assert wait["command"] == ["reelforge", "wait-for-stream", service], service
        assert wait["image"] == main["image"], service
        assert wait["envFrom"] == main["envFrom"], service
        assert {"name": "REELFORGE_NATS_USER", "value": service} in wait["env"], service
        assert {"cpu", "memory"} <= set(wait["resources"]["limits"]), service


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def pod_spec(doc: dict) -> dict:
    template = doc["spec"]["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob" else doc["spec"]["template"]
    return template


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_runs_non_root_read_only_without_privileges(overlay: str) -> None:
    """Each pod: RuntimeDefault seccomp, non-root; each container: read-only root, no escalation, no capability."""
    workloads = [d for d in rendered(overlay) if d["kind"] in WORKLOAD_KINDS]
    assert {w["metadata"]["name"] for w in workloads} >= {f"reelforge-{s}" for s in SERVICE_MODULES}
    for workload in workloads:
        name, spec = workload["metadata"]["name"], pod_spec(workload)["spec"]
        pod = spec.get("securityContext", {})
        assert not spec.get("hostNetwork"), name
        assert not spec.get("hostPID"), name
        assert not spec.get("hostIPC"), name
        scratch = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert (context.get("seccompProfile") or pod.get("seccompProfile")) == {"type": "RuntimeDefault"}, where
            assert context.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert context.get("runAsUser", pod.get("runAsUser", 0)) != 0, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("privileged", False) is False, where
            assert context.get("capabilities") == {"drop": ["ALL"]}, where
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]  # noqa: S108 - a path in a manifest
            assert tmp, f"{where}: /tmp is not an emptyDir (the root is read-only)"
            assert tmp[0]["name"] in scratch, f"{where}: /tmp is not an emptyDir (the root is read-only)"


def selects(selector: dict, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are understood here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def policies_for(docs: list[dict], labels: dict[str, str], direction: str) -> list[dict]:
    kind = direction.capitalize()
    return [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy" and kind in d["spec"]["policyTypes"] and selects(d["spec"]["podSelector"], labels)
    ]


IN_CLUSTER_EGRESS = {
    ("nats", (("app.kubernetes.io/name", "nats"),), (("TCP", 4222),)),
    ("minio", (("app", "minio"),), (("TCP", 9000),)),
    ("kube-system", (("k8s-app", "kube-dns"),), (("TCP", 53), ("UDP", 53))),
}
# What the named internet egress must keep closed (the egress guard's list, reelforge_shared/egress.py).
CLOSED = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "224.0.0.0/4"]
CLOSED += ["::1/128", "fc00::/7", "fe80::/10", "::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "2001::/32", "ff00::/8"]


def egress_peers(rule: dict) -> set[tuple]:
    """Each destination of one egress rule as (namespace, pod labels, ports) or ("ipBlock", cidr, excepts, ports)."""
    assert rule.get("to"), f"an egress rule without `to` opens every destination: {rule}"
    ports = tuple(sorted((p["protocol"], p["port"]) for p in rule.get("ports", [])))
    assert ports, f"an egress rule without ports opens every port: {rule}"
    peers = set()
    for peer in rule["to"]:
        if "ipBlock" in peer:
            peers.add(("ipBlock", peer["ipBlock"]["cidr"], tuple(peer["ipBlock"].get("except", [])), ports))
        else:
            namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            peers.add((namespace, tuple(sorted(peer["podSelector"]["matchLabels"].items())), ports))
    return peers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_let_only_the_named_egress_out(overlay: str) -> None:
    import ipaddress

    docs = rendered(overlay)
    deny = [d for d in docs if d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] == {}]
    assert [d["spec"] for d in deny] == [{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}], "no default deny"
    for workload in (d for d in docs if d["kind"] in WORKLOAD_KINDS):
        name, labels = workload["metadata"]["name"], pod_spec(workload)["metadata"]["labels"]
        egress = policies_for(docs, labels, "egress")
        peers = {peer for policy in egress for rule in policy["spec"].get("egress", []) for peer in egress_peers(rule)}
        in_cluster = {p for p in peers if p[0] != "ipBlock"}
        assert in_cluster == IN_CLUSTER_EGRESS, (name, in_cluster ^ IN_CLUSTER_EGRESS)
        internet = {p for p in peers if p[0] == "ipBlock"}
        talks_out = name in {"reelforge-gateway", "reelforge-uploader"}  # webhooks, reference fetches; GitLab
        assert bool(internet) == talks_out, (name, internet)
        if talks_out:
            named = [
                p["metadata"]["name"] for p in egress if any("ipBlock" in t for r in p["spec"].get("egress", []) for t in r["to"])
            ]
            assert named == ["reelforge-internet-egress"], named
            for _, cidr, excepts, ports in internet:
                assert ports == (("TCP", 80), ("TCP", 443)), ports
                closed = [n for n in map(ipaddress.ip_network, CLOSED) if n.version == ipaddress.ip_network(cidr).version]
                for net in closed:
                    assert any(net.subnet_of(ipaddress.ip_network(e)) for e in excepts), f"{name} may reach {net}"
        # Ingress: Prometheus's namespace to the metrics port; the gateway's API port; nothing else.
        allowed = set()
        for policy in policies_for(docs, labels, "ingress"):
            for rule in policy["spec"].get("ingress", []):
                sources = tuple(
                    p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule.get("from", [])
                )
                allowed |= {(sources or ("anywhere",), p["port"]) for p in rule["ports"]}
        wanted = {(("monitoring",), 9100)} | ({(("anywhere",), 8080)} if name == "reelforge-gateway" else set())
        assert allowed == wanted, (name, allowed)


def test_production_talks_tls_to_nats_and_s3_checked_against_a_mounted_ca() -> None:
    docs = rendered("production")
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["REELFORGE_NATS_URL"].startswith("tls://")
    assert config["REELFORGE_S3_SECURE"] == "true"
    ca = Path(config["REELFORGE_NATS_TLS_CA"])
    assert config["REELFORGE_S3_CA_BUNDLE"] == str(ca)
    for workload in (d for d in docs if d["kind"] in WORKLOAD_KINDS):
        spec = pod_spec(workload)["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"] + spec.get("initContainers", []):
            [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(ca.parent)]
            assert volumes[mount["name"]]["configMap"]["name"] == "reelforge-ca"
            assert mount["readOnly"] is True
    nats = yaml.safe_load((DEPLOY / "k8s" / "helm" / "nats-values.tls.yaml").read_text())
    assert nats["config"]["nats"]["tls"]["enabled"] is True
    minio = yaml.safe_load((DEPLOY / "k8s" / "helm" / "minio-values.tls.yaml").read_text())
    assert minio["tls"]["enabled"] is True
    # dev talks plain inside the cluster (documented in docs/security.md#deployments)
    dev = next(d for d in rendered("dev") if d["kind"] == "ConfigMap")["data"]
    assert dev["REELFORGE_NATS_URL"].startswith("nats://")


def test_production_runs_streams_at_r3_and_helm_values_cluster_nats() -> None:
    configmap = next(d for d in rendered("production") if d["kind"] == "ConfigMap")
    assert configmap["data"]["REELFORGE_STREAM_REPLICAS"] == "3"
    nats = yaml.safe_load((DEPLOY / "k8s" / "helm" / "nats-values.yaml").read_text())["config"]
    assert nats["cluster"] == {"enabled": True, "replicas": 3}
    assert nats["jetstream"]["fileStore"]["enabled"]
    assert nats["jetstream"]["merge"]["sync_interval"] == "always"
    assert nats["monitor"]["port"] == 8222
    minio = yaml.safe_load((DEPLOY / "k8s" / "helm" / "minio-values.yaml").read_text())
    assert {b["name"] for b in minio["buckets"]} == {"reelforge-work", "f1-video-clips"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_bootstrap_job_holds_the_nats_admin_identity(overlay: str) -> None:
    docs = rendered(overlay)
    [job] = [d for d in docs if d["kind"] == "Job"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["reelforge", "bootstrap"]
    assert {"name": "REELFORGE_NATS_USER", "value": "admin"} in container["env"]
    assert {"secretRef": {"name": "reelforge-bootstrap"}} in container["envFrom"]
    others = json.dumps([d for d in docs if d is not job])
    assert '"reelforge-bootstrap"' not in others, "another workload reads the admin Secret"
    assert '"value": "admin"' not in others, "a service runs as NATS's admin user"


# --- Grafana dashboard ---------------------------------------------------------------------------


def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "reelforge.json").read_text())


def test_dashboard_loads_with_grafana_foundation_sdk() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel
    from grafana_foundation_sdk.models.prometheus import Dataquery

    register_default_plugins()
    raw = dashboard()
    loaded = Dashboard.from_json(raw)
    assert loaded.uid == "reelforge"
    assert len(loaded.panels) == len(raw["panels"])
    for panel, source in zip(loaded.panels, raw["panels"], strict=True):
        assert isinstance(panel, Panel)
        assert panel.type_val in {"timeseries", "stat"}
        assert [t.expr for t in panel.targets if isinstance(t, Dataquery)] == [t["expr"] for t in source["targets"]]
    again = json.loads(json.dumps(loaded, cls=JSONEncoder))
    assert [p["title"] for p in again["panels"]] == [p["title"] for p in raw["panels"]]


def test_dashboard_shows_what_operators_watch_with_metrics_that_exist() -> None:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    used = set().union(*(metric_names_in(e) for e in exprs))
    assert used <= catalogued(), used - catalogued()
    for needed in (
        "reelforge_consumer_lag_messages",
        "reelforge_generator_vram_used_bytes",
        "reelforge_generator_gpu_temperature_celsius",
        "reelforge_generator_gpu_utilisation_ratio",
        "reelforge_qa_gate_checks_total",
        "reelforge_dead_letters_total",
        "reelforge_jobs",
        "reelforge_job_duration_seconds",
        "reelforge_events_handled_total",
    ):
        assert needed in used, needed


def test_dashboard_json_is_the_one_its_script_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("dashboard", DEPLOY / "grafana" / "dashboard.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = (DEPLOY / "grafana" / "dashboards" / "reelforge.json").read_text()
    assert written == module.render(), "run `python deploy/grafana/dashboard.py > deploy/grafana/dashboards/reelforge.json`"
