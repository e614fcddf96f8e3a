"""`reelforge run` with an edited storyboard into the same ``--out`` is the job's next film version, and `reelforge extend`
appends a segment from the last frame (issue 18 points 2 and 5): only the changed or new shot renders, and the report
says what changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reelforge.local_run import extend_run, run_storyboard
from reelforge_shared.events import SegmentGenerated
from reelforge_shared.storyboard import parse_storyboard

FAST = {"steps": 2, "batch_size": 8, "generation_width": 64}
BOARD = {
    "title": "Two shots",
    "output": {"width": 128, "height": 72},
    "segments": [
        {"id": "door", "prompt": "a red door", "frames": 2, "fps": 2},
        {"id": "boat", "prompt": "a green boat", "frames": 2, "fps": 2},
    ],
}


@pytest.mark.slow  # three film versions of a two-segment run through every service
async def test_an_edited_storyboard_into_the_same_out_is_the_next_version_and_extend_appends_a_shot(
    overrides, event_log, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert await run_storyboard(parse_storyboard(BOARD), out, **overrides, **FAST)
    first = json.loads((out / "report.json").read_text())
    job = first["job_id"]
    assert first["film"]["version"] == 1
    assert first["changes"] == []

    def rendered_since(seen: int) -> list[tuple[int, int]]:
        return [(e.index, e.attempt) for e in event_log.of(SegmentGenerated)[seen:] if e.job_id == job and e.reused_from is None]

    # One prompt edited, run again into the same folder: the same job's version 2, only that shot rendered.
    seen = len(event_log.of(SegmentGenerated))
    edited = {**BOARD, "segments": [BOARD["segments"][0], {**BOARD["segments"][1], "prompt": "a blue boat"}]}
    assert await run_storyboard(parse_storyboard(edited), out, **overrides, **FAST)
    report = json.loads((out / "report.json").read_text())
    assert report["job_id"] == job
    assert report["film"]["version"] == 2
    assert report["previous_version"] == 1
    assert [(c["index"], c["segment_id"], c["change"]) for c in report["changes"]] == [(2, "boat", "shot")]
    assert "prompt" in report["changes"][0]["changed_fields"]
    assert rendered_since(seen) == [(2, 2)]
    assert json.loads((out / "storyboard.json").read_text())["segments"][1]["prompt"] == "a blue boat"

    # Extended from the last frame: version 3 with a third segment, only it rendered.
    seen = len(event_log.of(SegmentGenerated))
    assert await extend_run(out, prompt="the boat sails away", duration_s=1.0, **overrides, **FAST)
    report = json.loads((out / "report.json").read_text())
    assert report["job_id"] == job
    assert report["film"]["version"] == 3
    assert [(c["index"], c["change"]) for c in report["changes"]] == [(3, "added")]
    assert rendered_since(seen) == [(3, 1)]
    assert [s["file"] for s in report["segments"]] == ["segments/001.mp4", "segments/002.mp4", "segments/003.mp4"]
    assert (out / "segments" / "003.mp4").stat().st_size > 0
    board = json.loads((out / "storyboard.json").read_text())
    assert (board["segments"][2]["prompt"], board["segments"][2]["start_from"]) == ("the boat sails away", "previous")


def _reelforge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reelforge.cli", *args], capture_output=True, text=True, timeout=120)


def test_extend_without_a_run_in_the_folder_exits_2_naming_it(tmp_path: Path) -> None:
    result = _reelforge("extend", str(tmp_path), "--prompt", "the boat sails away", "--duration-s", "1")
    assert result.returncode == 2, result.stderr
    assert "holds no `reelforge run`" in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "named"), [("--duration-s", "0", "--duration-s"), ("--duration-s", "601", "--duration-s")]
)
def test_extend_with_a_duration_out_of_bounds_exits_2_naming_the_option(
    tmp_path: Path, option: str, value: str, named: str
) -> None:
    result = _reelforge("extend", str(tmp_path), "--prompt", "x", option, value)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert value in result.stderr


def test_extend_with_an_empty_prompt_exits_2_naming_it(tmp_path: Path) -> None:
    result = _reelforge("extend", str(tmp_path), "--prompt", " ", "--duration-s", "1")
    assert result.returncode == 2, result.stderr
    assert "--prompt" in result.stderr
