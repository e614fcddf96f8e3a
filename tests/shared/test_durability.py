"""JetStream durability: the embedded nats-server and every shipped server config fsync each write.

Why: Jepsen's test of NATS 2.12.1 (2025) found that with the default ``sync_interval`` (2 min)
acknowledged messages lived only in the page cache and were lost when nodes lost power.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from reelforge_shared.embedded import free_port, nats_config, start_nats
from support.paths import ROOT


def test_the_embedded_server_fsyncs_every_write_on_file_storage(tmp_path: Path) -> None:
    port, monitor = free_port(), free_port()
    config = nats_config(tmp_path / "jetstream", port) + f"http: 127.0.0.1:{monitor}\n"
    server = start_nats(tmp_path, port, config)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/varz", timeout=5) as r:
            jetstream = json.loads(r.read())["jetstream"]["config"]
    finally:
        server.stop()
    assert jetstream["sync_always"] is True
    assert jetstream["store_dir"].startswith(str(tmp_path / "jetstream"))


def test_every_shipped_jetstream_config_says_sync_interval_always() -> None:
    configs = [
        p
        for p in (ROOT / "deploy").rglob("*")
        if p.is_file()
        and p.suffix in {".conf", ".yaml", ".yml"}
        and re.search(r"jetstream", p.read_text(errors="replace"), re.I)
        and "nats" in p.name.lower()
    ]
    assert configs, "no shipped nats-server config found under deploy/"
    for path in configs:
        assert re.search(r"^\s*sync_interval:\s*always\s*$", path.read_text(), re.M), f"{path.relative_to(ROOT)}"
