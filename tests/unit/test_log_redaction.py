"""Log redaction masks fields by the names of secret settings and credential headers, never by a word inside a name."""

from __future__ import annotations

import io
import json
import uuid

import structlog

from reelforge_shared.logging import register_secrets
from reelforge_shared.settings import CommonSettings


def _last_line(out: io.StringIO) -> dict:
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_prompt_tokens_is_logged_as_a_number(captured_logs: io.StringIO) -> None:
    structlog.get_logger("test").info("segment.generated", prompt_tokens=96, prompt_tokens_dropped=0, s_per_frame=0.43)
    line = _last_line(captured_logs)
    assert line["prompt_tokens"] == 96
    assert line["prompt_tokens_dropped"] == 0


def test_secret_settings_and_credential_headers_are_masked_by_name(captured_logs: io.StringIO) -> None:
    password = "pw-" + uuid.uuid4().hex
    register_secrets(CommonSettings(nats_user="qa", nats_password=password))
    headers = {"Authorization": "Bearer abc", "Cookie": "session=1", "Accept": "video/mp4"}
    structlog.get_logger("test").warning("request", nats_password="not-the-value", REELFORGE_NATS_TOKEN="x", headers=headers)
    line = _last_line(captured_logs)
    assert line["nats_password"] == "***"
    assert line["REELFORGE_NATS_TOKEN"] == "***"
    assert line["headers"]["Authorization"] == "***"
    assert line["headers"]["Cookie"] == "***"
    assert line["headers"]["Accept"] == "video/mp4"
