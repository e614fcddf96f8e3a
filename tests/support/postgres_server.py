"""A real PostgreSQL cluster for the tests: initdb + pg_ctl on a free loopback port, in a temporary folder.

Debian's server binaries (``/usr/lib/postgresql/*/bin``) or PATH. initdb refuses to run as root, so
under root the cluster is created and run as the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reelforge_shared.embedded import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise FileNotFoundError(f"{name} not found: install PostgreSQL's server (apt-get install postgresql)")
    return found[-1]


@dataclass
class PostgresCluster:
    data: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"], check=False, capture_output=True
        )


def start_postgres(root: Path) -> PostgresCluster:
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        [*as_user, _bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, _bin("pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-w", "-o", options, "start"],
        check=True,
        capture_output=True,
    )
    return PostgresCluster(data, port, as_user)
