"""`reelforge run` writes the process's logs into its ``--out`` folder while it runs, and leaves the logging as it found
it: a caller in the same process (the tests run it in-process) must not go on writing to the closed log file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import structlog

from reelforge.local_run import _logging_to


def test_a_runs_log_file_is_left_behind_and_the_logging_before_it_restored(tmp_path: Path, captured_logs: io.StringIO) -> None:
    log = structlog.get_logger("test")
    with _logging_to(tmp_path / "reelforge.log"):
        log.warning("inside.the.run")
    log.warning("after.the.run")  # raised "I/O operation on closed file" when the run's file stayed configured

    inside = [json.loads(line)["event"] for line in (tmp_path / "reelforge.log").read_text().splitlines()]
    assert inside == ["inside.the.run"]
    after = [json.loads(line)["event"] for line in captured_logs.getvalue().splitlines()]
    assert "after.the.run" in after
    assert "inside.the.run" not in after
