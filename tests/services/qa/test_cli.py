"""`reelforge qa VIDEO... --storyboard --film --json --html`: the checks on local files, without the bus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from reelforge.cli_qa import qa
from reelforge_qa.calibration import CASES, CLEAN, FPS, FRAMES, build

app = typer.Typer()
app.command("qa")(qa)  # the same registration as in reelforge.cli


@app.callback()
def _root() -> None:
    """A group, so the command is called by name as in `reelforge qa`."""


def _storyboard(path: Path) -> Path:
    board = {
        "title": "calibration",
        "output": {"width": 320, "height": 180},
        "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1}},
        "locations": {name: {"description": name, "seed": 2} for name in ("field", "barn")},
        "segments": [
            {
                "id": p.segment_id,
                "prompt": "shot",
                "characters": list(p.characters),
                "location": p.location,
                "frames": FRAMES,
                "fps": FPS,
                "transition": {"type": p.transition, "duration": p.transition_s},
            }
            for p in CLEAN
        ],
    }
    path.write_text(yaml.safe_dump(board))
    return path


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[Path], Path]]:
    root = tmp_path_factory.mktemp("cli")
    out = {}
    for case in CASES:
        if case.name in ("clean", "shirt"):
            videos, film = build(case, root / case.name)
            out[case.name] = ([v.path for v in videos], film)
    return out


def test_qa_command_scores_a_clean_film_and_writes_html(films: dict, tmp_path: Path) -> None:
    videos, film = films["clean"]
    html = tmp_path / "report.html"
    board = _storyboard(tmp_path / "sb.yaml")
    args = ["qa", *map(str, videos), "--storyboard", str(board), "--film", str(film), "--json", "--html", str(html)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"]
    assert [s["id"] for s in report["segments"]] == ["s1", "s2", "s3", "s4", "s5"]
    assert report["segments"][0]["gates"]["technical"]["passed"]
    assert report["film_qa"]["film"] == str(film)
    assert [b["detected"] for b in report["film_qa"]["boundaries"]] == ["cut", "dissolve", "cut", "dissolve"]
    assert html.read_text().count("data:image/jpeg;base64,") == 5


def test_qa_command_fails_on_a_continuity_fault(films: dict, tmp_path: Path) -> None:
    videos, film = films["shirt"]
    result = CliRunner().invoke(app, ["qa", *map(str, videos), "--storyboard", str(_storyboard(tmp_path / "sb.yaml")), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["passed"]
    assert any(line.startswith("character hero") for line in report["film_qa"]["failures"])
    assert {b["detected"] for b in report["film_qa"]["boundaries"]} == {"unknown"}  # no --film: joins not read


def test_qa_command_without_storyboard_checks_files_against_themselves(films: dict) -> None:
    videos, _ = films["clean"]
    result = CliRunner().invoke(app, ["qa", *map(str, videos[:2])])
    assert result.exit_code == 0, result.output
    assert "s1: passed" in result.output


def test_qa_command_refuses_a_storyboard_of_another_length(films: dict, tmp_path: Path) -> None:
    videos, _ = films["clean"]
    result = CliRunner().invoke(app, ["qa", str(videos[0]), "--storyboard", str(_storyboard(tmp_path / "sb.yaml"))])
    assert result.exit_code == 2
    assert "1 videos for a storyboard of 5 segments" in result.output
