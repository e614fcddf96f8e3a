"""Write every file generated from the code, in place: `make generated` (the tests check each is current).

- README.md: the flow diagram (``reelforge flow``) and the settings table (``reelforge settings``);
- docs/metrics.md (``reelforge metrics``);
- deploy/nats/auth.conf (``reelforge access nats``) and the access table in docs/security.md (``reelforge access table``);
- deploy/minio/policies/<service>.json (``reelforge access minio-policy``, for the default buckets).

Run it after adding an event, a flow row, a setting, a gate or a metric; `git diff` shows what it changed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from reelforge.stack import settings_table
from reelforge_shared import flow
from reelforge_shared.access import access_table, minio_policy, nats_authorization
from reelforge_shared.metrics import metrics_markdown
from reelforge_shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]


def _replace_table(text: str, table: str) -> str:
    """``text`` with the Markdown table that starts with ``table``'s header line replaced by ``table``."""
    header = table.splitlines()[0]
    start = text.index(header)
    end = start
    for line in text[start:].splitlines(keepends=True):
        if not line.startswith("|"):
            break
        end += len(line)
    return text[:start] + table.rstrip("\n") + "\n" + text[end:]


def main() -> None:
    readme = ROOT / "README.md"
    text = re.sub(r"```mermaid\n.*?```", lambda _: f"```mermaid\n{flow.mermaid()}```", readme.read_text(), count=1, flags=re.S)
    readme.write_text(_replace_table(text, settings_table()))
    (ROOT / "docs" / "metrics.md").write_text(metrics_markdown())
    (ROOT / "deploy" / "nats" / "auth.conf").write_text(nats_authorization())
    security = ROOT / "docs" / "security.md"
    security.write_text(_replace_table(security.read_text(), access_table()))
    defaults = CommonSettings()
    for service in flow.SERVICES:
        policy = minio_policy(service, defaults.work_bucket, defaults.delivery_bucket)
        (ROOT / "deploy" / "minio" / "policies" / f"{service}.json").write_text(json.dumps(policy, indent=2) + "\n")


if __name__ == "__main__":
    main()
