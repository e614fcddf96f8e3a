"""`reelforge run` as a user runs it: embedded servers, progress, files in the output folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reelforge_shared.media import probe
from support.factories import two_shots_yaml

STORYBOARD = two_shots_yaml("Two shots")


def _reelforge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reelforge.cli", *args], capture_output=True, text=True, env=env, timeout=600)


def test_invalid_storyboard_exits_2_naming_the_field(tmp_path: Path) -> None:
    board = tmp_path / "bad.yaml"
    board.write_text("segments:\n  - {id: a, prompt: x, characters: [ghost]}\n")
    result = _reelforge("run", str(board), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "segments[0].characters[0]" in result.stderr
    assert "unknown character 'ghost'" in result.stderr


def test_a_prompt_its_model_cannot_read_whole_exits_2_naming_the_field_and_the_limit(tmp_path: Path) -> None:
    board = tmp_path / "long.yaml"
    board.write_text(json.dumps({"model": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "segments": [{"id": "a", "prompt": "a " * 520}]}))
    result = _reelforge("run", str(board), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "segments[0].prompt" in result.stderr
    assert "at least 521 tokens" in result.stderr
    assert "at most 512" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing started


def test_a_media_file_outside_the_storyboards_folder_exits_2_naming_the_field(tmp_path: Path) -> None:
    folder = tmp_path / "film"
    folder.mkdir()
    board = folder / "board.yaml"
    board.write_text(json.dumps({"segments": [{"id": "a", "prompt": "x"}], "audio": {"music": "/etc/hostname"}}))
    result = _reelforge("run", str(board), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "audio.music: '/etc/hostname' is not a file in the storyboard's folder" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing started


def test_missing_storyboard_file_is_a_clear_error(tmp_path: Path) -> None:
    result = _reelforge("run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "cannot read storyboard" in result.stderr


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


async def _kill_once_a_segment_is_generated(proc: subprocess.Popen, out: Path) -> str:
    """Follow the run's own ledger (its embedded NATS) and SIGKILL the CLI once work is half done."""
    import asyncio
    import re

    import nats

    from reelforge_shared.jobs import JobRecord

    log = out / ".reelforge" / "state" / "nats" / "nats-server.log"
    for _ in range(1200):
        assert proc.poll() is None, proc.stderr.read()
        if log.exists() and (match := re.search(r"client connections on 127.0.0.1:(\d+)", log.read_text())):
            break
        await asyncio.sleep(0.1)
    job = json.loads((out / ".reelforge" / "job.json").read_text())["job_id"]
    nc = await nats.connect(f"nats://127.0.0.1:{match[1]}")
    try:
        for _ in range(3000):
            assert proc.poll() is None, proc.stderr.read()
            try:
                kv = await nc.jetstream().key_value("REELFORGE_jobs")
                record = JobRecord.model_validate_json((await kv.get(f"job.{job}")).value)  # the job's head
            except Exception:  # noqa: BLE001 - bucket or record not there yet
                record = None
            if record and record.count_reached("generated"):
                assert not record.terminal
                break
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
    servers = _children(proc.pid)
    proc.kill()
    proc.wait()
    for _ in range(600):  # the embedded servers follow their parent (PDEATHSIG); wait until they are gone
        if not any(Path(f"/proc/{pid}").exists() for pid in servers):
            break
        await asyncio.sleep(0.05)
    return job


async def test_a_killed_run_resumes_and_writes_the_film_segments_and_report(tmp_path: Path, model_cache: Path) -> None:
    board = tmp_path / "board.yaml"
    board.write_text(STORYBOARD)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "REELFORGE_GENERATOR_STEPS": "2",
        "REELFORGE_MODEL_CACHE_DIR": str(model_cache),
        "REELFORGE_ACK_WAIT_S": "3",  # work the killed run held is redelivered after the ack wait
    }
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelforge.cli", "run", str(board), "--out", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    job = await _kill_once_a_segment_is_generated(proc, out)
    result = _reelforge("run", str(board), "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert f"job {job} resumed" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "completed"
    assert report["model"]["random_weights"]
    assert report["job_id"] == job
    assert [(s["id"], s["status"], s["file"]) for s in report["segments"]] == [
        ("one", "delivered", "segments/001.mp4"),
        ("two", "delivered", "segments/002.mp4"),
    ]
    assert set(report["segments"][0]["qa"]) >= {"technical", "sharpness", "exposure", "noise"}
    film = probe(out / "final.mp4")
    assert (film.width, film.height, film.frame_count) == (256, 144, 6)
    assert film.duration_s == pytest.approx(2.0, abs=0.01) == report["film"]["duration_s"]
    assert probe(out / "segments" / "002.mp4").frame_count == 3
    assert "<svg" in (out / "report.html").read_text()
    assert {"9x16", "1x1", "thumbnail"} <= set(report["deliverables"])
    assert (out / report["deliverables"]["thumbnail"]).exists()
    assert "delivered" in result.stderr
    assert "done" in result.stderr
    # The segment generated before the kill was not generated again (the log of both runs is one file).
    generated = [json.loads(line) for line in (out / "reelforge.log").read_text().splitlines() if '"SegmentRequested"' in line]
    handled = [(e["index"], e.get("delivery")) for e in generated if e.get("service") == "generator" and e.get("outcome") == "ok"]
    assert len({i for i, _ in handled}) == 2, handled
    assert len(handled) <= 3, handled


def test_worker_without_servers_is_a_clear_error() -> None:
    result = _reelforge("worker", "encoder", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "REELFORGE_NATS_URL and REELFORGE_S3_ENDPOINT must be set" in result.stderr
    assert "unknown service 'painter'" in _reelforge("worker", "painter").stderr
    servers = {
        "PATH": "/usr/bin:/bin",
        "REELFORGE_NATS_URL": "nats://127.0.0.1:1",
        "REELFORGE_S3_ENDPOINT": "127.0.0.1:1",
        "REELFORGE_S3_SECRET_KEY": "a-key-of-its-own",
    }  # not the built-in one, which a worker refuses first
    refused = _reelforge("worker", "gateway", env=servers)  # outside local mode the API does not run open by accident
    assert refused.returncode == 2
    assert "REELFORGE_API_TOKENS is not set" in refused.stderr
    assert "REELFORGE_API_AUTH=off" in refused.stderr


def test_up_serves_the_gateway_until_interrupted(tmp_path: Path, model_cache: Path) -> None:
    import signal
    import time

    import httpx

    from reelforge_shared.embedded import free_port

    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "REELFORGE_MODEL_CACHE_DIR": str(model_cache)}
    cmd = [sys.executable, "-m", "reelforge.cli", "up", "--port", str(port), "--state-dir", str(tmp_path / "state")]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # a real server: poll its health endpoint until it answers (this is the readiness probe)
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gateway never became healthy"
            time.sleep(0.2)
        response = httpx.post(f"http://127.0.0.1:{port}/v1/jobs", json={"segments": [{"id": "a", "prompt": "x", "frames": 0}]})
        assert response.status_code == 422
        assert response.json()["details"]["fields"][0]["field"] == "segments[0].frames"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


@pytest.mark.parametrize("nats_url", ["nats://127.0.0.1:{port}", "nats://127.0.0.1:{port},nats://127.0.0.1:{other}"])
def test_sigterm_while_the_first_nats_connect_is_refused_exits_0_at_once(
    nats_url: str,
    overrides: dict,
    store,
    s3_keys: dict[str, dict[str, str]],  # store: S3 up, the buckets made
) -> None:
    """A worker whose NATS is not up yet (the client retries the first connect without end) still stops on SIGTERM."""
    import signal
    import time

    import httpx

    from reelforge_shared.embedded import free_port

    health = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "REELFORGE_NATS_URL": nats_url.format(port=free_port(), other=free_port()),
        "REELFORGE_S3_ENDPOINT": overrides["s3_endpoint"],
        "REELFORGE_S3_ACCESS_KEY": s3_keys["encoder"]["s3_access_key"],
        "REELFORGE_S3_SECRET_KEY": s3_keys["encoder"]["s3_secret_key"],
        "REELFORGE_WORK_BUCKET": overrides["work_bucket"],
        "REELFORGE_DELIVERY_BUCKET": overrides["delivery_bucket"],
        "REELFORGE_METRICS_PORT": str(health),
        "REELFORGE_LOG_JSON": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "reelforge.cli", "worker", "encoder"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:  # until /healthz answers and says nats is down: the worker is inside its first connect
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if "nats" in httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=1).json()["down"]:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the worker never reported nats down"
            time.sleep(0.2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read() if proc.stdout else ""
    assert code == 0, (code, took, output[-2000:])
    assert took < 3, (code, took, output[-2000:])
    assert "service.stopped_before_connect" in output
