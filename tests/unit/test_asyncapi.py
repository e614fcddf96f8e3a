"""The bus contract for downstream users: the AsyncAPI document, checked by the official parser.

examples/consumer.py runs against a real run in tests/system/test_video_api.py (one pipeline run serves both).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reelforge_shared.asyncapi import asyncapi_document
from reelforge_shared.events import ALL_EVENTS, EVENTS_BY_SUBJECT, DeadLetter
from reelforge_shared.flow import STAGED_FAILURES
from support.paths import ROOT

TOOLS = ROOT / "tools" / "asyncapi"


@pytest.fixture(scope="session")
def asyncapi_parser() -> Path:
    """@asyncapi/parser from npm, installed from tools/asyncapi/package-lock.json when missing."""
    if not (TOOLS / "node_modules" / "@asyncapi" / "parser").exists():
        npm = shutil.which("npm") or "/usr/bin/npm"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TOOLS, check=True, capture_output=True, timeout=600)
    return TOOLS / "validate.mjs"


def _validate(parser: Path, document: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document))
    node = shutil.which("node") or "/usr/bin/node"
    return subprocess.run([node, str(parser), str(path)], capture_output=True, text=True, timeout=120)


def test_the_document_is_valid_asyncapi_3_and_every_field_is_documented(asyncapi_parser, tmp_path: Path) -> None:
    document = asyncapi_document()
    result = _validate(asyncapi_parser, document, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"valid AsyncAPI 3.1.0: {len(ALL_EVENTS) + 1} channels" in result.stdout

    # Every field of every payload says what it is and shows an example.
    undocumented = [
        f"{model}.{name}"
        for model, schema in document["components"]["schemas"].items()
        for name, prop in schema.get("properties", {}).items()
        if not (prop.get("description") and prop.get("examples"))
    ]
    assert undocumented == []
    # Every event has its channel, and each message's example is a valid event of its model.
    addresses = {c["address"] for c in document["channels"].values()}
    staged = {e.subject for e in STAGED_FAILURES}  # a failure's subject names its stage: segment.failed.{stage}
    expected = {"{prefix}." + s + (".{stage}" if s in staged else "") for s in EVENTS_BY_SUBJECT}
    assert expected | {"{prefix}.dead.{service}"} == addresses
    for name, message in document["components"]["messages"].items():
        model = next(m for m in (*ALL_EVENTS, DeadLetter) if m.__name__ == name)
        model.model_validate(message["examples"][0]["payload"])

    # The parser does fail: an operation on a channel that does not exist.
    broken = copy.deepcopy(document)
    broken["operations"]["publishJobCompleted"]["channel"] = {"$ref": "#/channels/nowhere"}
    assert _validate(asyncapi_parser, broken, tmp_path).returncode == 1
