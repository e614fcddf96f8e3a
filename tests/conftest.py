"""Real servers for the tests: nats-server (JetStream) and an S3 server, once per session, on free ports.

Each test gets its own subject prefix (so its own stream and consumers) and its own buckets.

The folders: unit/ (no server), services/<service>/ (one service, its handlers on the real servers), shared/ (the
common library on the real servers), system/ (several services together), faults/, deploy/; helpers in support/.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import structlog

from reelforge_shared.bus import bootstrap
from reelforge_shared.embedded import ACCESS_KEY, SECRET_KEY, EmbeddedServer, start_nats, start_s3
from reelforge_shared.events import EVENTS_BY_SUBJECT, Event
from reelforge_shared.flow import event_subject
from reelforge_shared.logging import configure_logging
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import ObjectStore
from support.buckets import BucketPool

# No test reaches the internet: run-time model loading reads local files only, and huggingface_hub is told so too.
os.environ["HF_HUB_OFFLINE"] = "1"
# The tests are local mode: the built-in random-weight models are allowed (a deployment refuses them by default).
os.environ.setdefault("REELFORGE_ALLOW_TEST_MODEL", "1")
# Under pytest-xdist (`make test-fast`) each worker gets its share of the cores for torch's OpenMP threads (and so
# do the processes it starts). Two workers with two threads each put four busy threads on two cores: a thread
# waiting for its partner spins while the partner waits for a core. A tiny SD render of four frames took 4-5 s of
# CPU and 19-25 s of wall time that way at load 25, 0.35 s and 0.6 s with one thread. One process (`make test`)
# keeps torch's default.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))


# Markers a test gets from where it lies and what it uses, so `-m "not nats"` or `-m faults` select without
# anyone having to remember to mark a new test.
FOLDER_MARKERS = {"faults": "faults", "deploy": "deploy"}
FIXTURE_MARKERS = {"nats_server": "nats", "s3_server": "s3"}
# Tests that start servers of their own (not the session's fixtures).
OWN_SERVERS = {
    "faults/": ("nats", "s3"),
    "shared/test_tls.py": ("nats",),
    "shared/test_durability.py": ("nats",),
    "shared/test_job_store.py": ("nats",),  # a server with max_payload 1MB
    "shared/test_dead_letters.py": ("nats",),  # a server with the default max_payload (1MB)
    "deploy/test_prometheus.py": ("nats", "s3"),
    "system/test_cli.py": ("nats", "s3"),  # `reelforge run` starts embedded servers
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        where = item.path.relative_to(tests).as_posix()
        names: set[str] = set()
        names.update(m for folder, m in FOLDER_MARKERS.items() if where.startswith(f"{folder}/"))
        names.update(m for fixture, m in FIXTURE_MARKERS.items() if fixture in getattr(item, "fixturenames", ()))
        for prefix, markers in OWN_SERVERS.items():
            names.update(markers if where.startswith(prefix) else ())
        for name in sorted(names - {m.name for m in item.iter_markers()}):
            item.add_marker(name)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    # Its data goes with the session; a graceful stop flushes every test's stream and buckets: up to 7 s at the end
    # of a make test-fast worker (load 3-9).
    server.kill()


@pytest.fixture(scope="session")
def s3_keys() -> dict[str, dict[str, str]]:
    """One S3 identity per service (settings overrides), known to the session's S3 server."""
    from reelforge_shared.flow import SERVICES

    return {name: {"s3_access_key": f"test-{name}", "s3_secret_key": f"test-{name}-{uuid.uuid4().hex}"} for name in SERVICES}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory, s3_keys: dict[str, dict[str, str]]) -> Iterator[EmbeddedServer]:
    from reelforge_shared.access import seaweedfs_identities

    # Each service's identity has rights on the test buckets (work-*, deliver-*) by the access table.
    keys = {name: (k["s3_access_key"], k["s3_secret_key"]) for name, k in s3_keys.items()}
    identities = seaweedfs_identities(keys, "work-*", "deliver-*")["identities"]
    server = start_s3(tmp_path_factory.mktemp("s3"), identities=identities)
    yield server
    server.kill()  # its data goes with the session; a graceful stop flushes a volume per test bucket (up to 10 s)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def bucket_pool(s3_server: EmbeddedServer) -> Iterator[BucketPool]:
    admin = CommonSettings(s3_endpoint=s3_server.url, s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY)
    pool = BucketPool(ObjectStore.from_settings(admin))
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def fresh_settings(
    nats_server: EmbeddedServer, s3_server: EmbeddedServer, model_cache: Path, bucket_pool: BucketPool
) -> Callable[[], dict[str, Any]]:
    """Settings of the session's servers with a subject prefix and buckets no other test has (a new set each call)."""

    def fresh() -> dict[str, Any]:
        tag = bucket_pool.take()
        return {
            "nats_url": nats_server.url,
            "s3_endpoint": s3_server.url,
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SECRET_KEY,
            "subject_prefix": f"t{tag}",
            "work_bucket": f"work-{tag}",
            "delivery_bucket": f"deliver-{tag}",
            "model_cache_dir": str(model_cache),
            # A stopping worker waits for its pulls to end: 0.2 s instead of 1 s at the end of every test with services.
            "fetch_wait_s": 0.2,
        }

    return fresh


@pytest.fixture
def overrides(fresh_settings: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Settings for one test: real servers, a prefix and buckets of its own."""
    settings = fresh_settings() | {"ack_wait_s": 10.0, "retry_delay_s": 0.2}
    asyncio.run(bootstrap(CommonSettings(**settings)))  # the stream and KV buckets, as `reelforge bootstrap` makes them
    return settings


@pytest.fixture
def settings(overrides: dict[str, Any]) -> CommonSettings:
    return CommonSettings(**overrides)


@pytest.fixture
def store(settings: CommonSettings) -> ObjectStore:
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket(settings.work_bucket)
    store.ensure_bucket(settings.delivery_bucket)
    return store


class EventLog:
    """Every event published under a prefix, in order, with waits on a condition (no sleeps)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.raw: list[tuple[str, bytes]] = []
        self._changed = asyncio.Condition()

    async def on_message(self, msg: Any) -> None:
        self.raw.append((msg.subject, msg.data))
        cls = EVENTS_BY_SUBJECT.get(event_subject(msg.subject.split(".", 1)[1]))
        if cls is not None:
            self.events.append(cls.model_validate_json(msg.data))
        async with self._changed:
            self._changed.notify_all()

    def of(self, cls: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, cls)]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 120) -> Any:
        async def _wait() -> Any:
            async with self._changed:
                while not (result := condition()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(_wait(), timeout)


@pytest.fixture
async def event_log(settings: CommonSettings) -> AsyncIterator[EventLog]:
    nc = await nats.connect(settings.nats_url)
    log = EventLog()
    await nc.subscribe(f"{settings.subject_prefix}.>", cb=log.on_message)
    yield log
    await nc.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL of the tests' own (started on first use, once per session)."""
    import shutil
    import tempfile

    from support.postgres_server import start_postgres

    root = Path(tempfile.mkdtemp(prefix="reelforge-pg-"))  # not under pytest's root-only temp dir: postgres must reach it
    cluster = start_postgres(root)
    yield cluster.url
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def gitlab_standin() -> Iterator[Any]:
    """STAND-IN for GitLab's HTTP API (no GitLab can run here): see tests/support/gitlab_standin.py."""
    from support.gitlab_standin import GitLabStandIn

    standin = GitLabStandIn(token=f"glpat-{uuid.uuid4().hex[:12]}").start()
    yield standin
    standin.stop()


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The process's logs (structlog and standard logging) at DEBUG into a buffer; the logging setup restored after."""
    saved, handlers, level = structlog.get_config(), logging.root.handlers[:], logging.root.level
    out = io.StringIO()
    configure_logging("DEBUG", json=True, stream=out)
    yield out
    structlog.configure(**saved)
    logging.root.handlers[:], logging.root.level = handlers, level
