"""`reelforge qa VIDEO... --storyboard --film --json --html`: the checks on local files, without the bus."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import pytest
import typer
import yaml
from PIL import Image
from typer.testing import CliRunner

from reelforge.cli_qa import qa
from reelforge_qa.calibration import CASES, CLEAN, FPS, FRAMES, build
from reelforge_qa.synthetic import render_shot

app = typer.Typer()
app.command("qa")(qa)  # the same registration as in reelforge.cli


@app.callback()
def _root() -> None:
    """A group, so the command is called by name as in `reelforge qa`."""


def _storyboard(path: Path, reference_image: str | None = None) -> Path:
    board = {
        "title": "calibration",
        "output": {"width": 320, "height": 180},
        "characters": {"hero": {"description": "a man in a blue shirt", "seed": 1, "reference_image": reference_image}},
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


def _hero_still(path: Path) -> Path:
    """The hero as a reference image would show him: one still, standing mid-frame in the blue shirt (s1's man)."""
    assert cv2.imwrite(str(path), render_shot(replace(CLEAN[0].shot, start_x=150, walk=0), 1)[0])
    return path


def test_qa_command_scores_each_segment_against_the_reference_image_and_marks_the_drifting_one(
    films: dict, tmp_path: Path
) -> None:
    videos, _ = films["shirt"]  # s5's shirt turned red
    (tmp_path / "refs").mkdir()
    still = _hero_still(tmp_path / "refs" / "hero.png")
    board = _storyboard(tmp_path / "sb.yaml", "refs/hero.png")  # relative to the storyboard's folder
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["qa", *map(str, videos), "--storyboard", str(board), "--json", "--html", str(html)])
    assert result.exit_code == 1, result.output  # the segment-against-segment check fails; the references fail nothing
    refs = {r["segment_id"]: r for r in json.loads(result.stdout)["film_qa"]["references"]}
    assert set(refs) == {"s1", "s2", "s4", "s5"}  # s3 shows nobody
    assert {(r["kind"], r["name"], r["source"], r["image"]) for r in refs.values()} == {
        ("character", "hero", "reference_image", str(still.resolve()))
    }
    assert refs["s1"]["score"] >= 0.9, refs["s1"]
    assert not refs["s1"]["below"]
    assert refs["s5"]["score"] < 0.5, refs["s5"]
    assert [s for s, r in refs.items() if r["below"]] == ["s5"], refs
    assert {r["threshold"] for r in refs.values()} == {0.85}
    page = html.read_text()
    assert '<tr class="fail" id="reference-s5-character-hero">' in page
    assert '<tr class="" id="reference-s1-character-hero">' in page
    human = CliRunner().invoke(app, ["qa", *map(str, videos), "--storyboard", str(board)])
    lines = {line.split(":")[0]: line for line in human.output.splitlines() if "against its reference image" in line}
    assert set(lines) == {"s1", "s2", "s4", "s5"}, human.output
    assert lines["s5"].endswith("below"), lines["s5"]
    assert "below" not in lines["s1"], lines["s1"]


def _refused(films: dict, tmp_path: Path, reference: str) -> str:
    board = _storyboard(tmp_path / "sb.yaml", reference)
    result = CliRunner().invoke(app, ["qa", *map(str, films["clean"][0]), "--storyboard", str(board), "--json"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # no report
    return " ".join(result.output.split())  # rich wraps long lines


def test_qa_command_refuses_a_reference_image_that_is_missing_not_an_image_too_large_or_a_url(
    films: dict, tmp_path: Path
) -> None:
    field = "characters.hero.reference_image"
    assert f"{field}: no such file {tmp_path / 'gone.png'}" in _refused(films, tmp_path, "gone.png")
    (tmp_path / "notes.png").write_text("not a picture")
    message = _refused(films, tmp_path, "notes.png")
    assert f"{field} ({tmp_path / 'notes.png'}): not a PNG, JPEG or WebP image that decodes" in message
    Image.new("1", (5000, 4000)).save(tmp_path / "huge.png")  # 20 Mpx in a few kB: over the 16.8 Mpx cap
    assert f"{field} ({tmp_path / 'huge.png'}): 5000x4000 image, over the 16777216-pixel cap" in _refused(
        films, tmp_path, "huge.png"
    )
    assert f"{field}: 'https://example.com/hero.png' is a URL" in _refused(films, tmp_path, "https://example.com/hero.png")


def _run_folder(out: Path, videos: list[Path]) -> Path:
    """A `reelforge run` output folder as `_collect` writes it: segments/NNN.mp4, storyboard.json, cast/KEY.png and
    report.json naming each segment's file and the cast sheets it was conditioned on (``file`` beside the key)."""
    (out / "segments").mkdir(parents=True)
    (out / "cast").mkdir()
    _hero_still(out / "cast" / "aa.png")
    assert cv2.imwrite(str(out / "cast" / "bb.png"), render_shot(replace(CLEAN[2].shot, seed=9), 1)[0])  # the field
    _storyboard(out / "storyboard.json")  # YAML is JSON's superset: the run writes JSON, either reads

    def sheet(kind: str, name: str, key: str) -> dict:
        return {"kind": kind, "name": name, "key": key, "image": f"jobs/j/cast/{key}.png", "file": f"cast/{key}.png"}

    segments = []
    for n, (part, video) in enumerate(zip(CLEAN, videos, strict=True), start=1):
        (out / "segments" / f"{n:03d}.mp4").write_bytes(video.read_bytes())
        sheets = [sheet("character", "hero", "aa")] if part.characters else []
        sheets += [sheet("location", "field", "bb")] if part.location == "field" else []  # no barn sheet drawn
        segments.append({"index": n, "id": part.segment_id, "file": f"segments/{n:03d}.mp4", "cast_sheet": sheets})
    (out / "report.json").write_text(json.dumps({"status": "completed", "segments": segments}))
    return out


def test_qa_command_on_a_run_folder_scores_each_segment_against_its_cast_sheets(films: dict, tmp_path: Path) -> None:
    out = _run_folder(tmp_path / "out", films["shirt"][0])
    result = CliRunner().invoke(app, ["qa", str(out), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [s["path"] for s in report["segments"]] == [str(out / "segments" / f"{n:03d}.mp4") for n in range(1, 6)]
    refs = {(r["segment_id"], r["kind"], r["name"]): r for r in report["film_qa"]["references"]}
    assert set(refs) == {
        *((s, "character", "hero") for s in ("s1", "s2", "s4", "s5")),
        *((s, "location", "field") for s in ("s1", "s2", "s3", "s5")),  # s4's barn has no sheet: not scored
    }
    assert {(r["source"], r["image"]) for r in refs.values()} == {
        ("cast_sheet", str(out / "cast" / "aa.png")),
        ("cast_sheet", str(out / "cast" / "bb.png")),
    }
    hero = {s: refs[(s, "character", "hero")] for s in ("s1", "s2", "s4", "s5")}
    assert hero["s1"]["score"] >= 0.9, hero["s1"]
    assert hero["s5"]["score"] < 0.5, hero["s5"]
    assert [s for s, r in hero.items() if r["below"]] == ["s5"]
    assert refs[("s3", "location", "field")]["score"] >= 0.85, refs[("s3", "location", "field")]


def test_qa_command_on_a_run_folder_refuses_a_cast_sheet_that_is_no_image(films: dict, tmp_path: Path) -> None:
    out = _run_folder(tmp_path / "out", films["clean"][0])
    (out / "cast" / "bb.png").write_bytes(b"GIF89a")
    result = CliRunner().invoke(app, ["qa", str(out)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"the cast sheet of location field ({out / 'cast' / 'bb.png'}): not a PNG, JPEG or WebP image" in message
    assert CliRunner().invoke(app, ["qa", str(tmp_path)]).exit_code == 2  # no run there


def test_qa_command_on_a_run_folder_says_where_a_reference_image_is_read(films: dict, tmp_path: Path) -> None:
    out = _run_folder(tmp_path / "out", films["clean"][0])
    _storyboard(out / "storyboard.json", "hero.png")  # as the run's storyboard named it, beside itself elsewhere
    result = CliRunner().invoke(app, ["qa", str(out)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"characters.hero.reference_image: no such file {(out / 'hero.png').resolve()}" in message
    assert "give that one with --storyboard" in message
    board = _storyboard(tmp_path / "sb.yaml", "hero.png")
    _hero_still(tmp_path / "hero.png")
    result = CliRunner().invoke(app, ["qa", str(out), "--storyboard", str(board), "--json"])
    assert result.exit_code == 0, result.output
    sources = {(r["name"], r["source"]) for r in json.loads(result.stdout)["film_qa"]["references"]}
    assert sources == {("hero", "reference_image"), ("field", "cast_sheet")}  # the reference image wins over the sheet
