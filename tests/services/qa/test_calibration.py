"""Calibration: films with one known fault each are caught by the check meant for it, the clean film passes.

The films are synthetic (reelforge_qa.synthetic: a figure in a blue shirt walking through a field
and a barn, 320x180, 4 fps) and the same as docs/qa.md's tables. One real-encoder case checks that
the encoder's own dissolves read as dissolves and its cuts as cuts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge_encoder.ffmpeg import Codec, FilmPart, ffmpeg_exe
from reelforge_encoder.film_joins import compile_film
from reelforge_qa.calibration import CASES, CLEAN, FPS, FRAMES, Outcome, build, pyscenedetect_cuts, run_case
from reelforge_qa.film_checks import check_film
from reelforge_qa.transitions import detect_cuts, read_film

pytestmark = pytest.mark.slow  # encodes and scores the thirteen calibration films (every gate and check on each)

CASE_NAMES = [c.name for c in CASES]
# Ground truth of the films: a cut s1->s2 (frame 8, one place, re-framed) and s3->s4 (frame 24, field to barn);
# s2->s3 and s4->s5 are 1 s dissolves (4 frames), except in "hard_cut", where s4->s5 is a cut at frame 32.
TRUE_CUTS = {name: [8, 24] for name in CASE_NAMES} | {"hard_cut": [8, 24, 32]}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("calibration")
    return {case.name: run_case(case, root / case.name) for case in CASES}


def test_calibration_clean_film_passes_every_gate_and_check(outcomes: dict[str, Outcome]) -> None:
    clean = outcomes["clean"]
    assert clean.failed == set()
    assert clean.film.passed
    assert all(r.passed for r in clean.segments.values())
    # The joins read as asked: cuts where cuts were asked, dissolves where dissolves were.
    assert [(b.requested, b.detected) for b in clean.film.boundaries] == [
        ("cut", "cut"),
        ("dissolve", "dissolve"),
        ("cut", "cut"),
        ("dissolve", "dissolve"),
    ]
    hero = next(c for c in clean.film.characters if c.name == "hero")
    assert hero.score is not None
    assert hero.score > 0.85
    assert all(p.gated for p in hero.pairs)  # judged on the character, so also across locations (the barn)
    assert set(hero.pairs[0].components) == {"colour", "texture", "shape", "scale"}


@pytest.mark.parametrize("name", [n for n in CASE_NAMES if n != "clean"])
def test_calibration_fault_is_caught_by_its_check(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    if not outcome.case.expected:  # a clean variation (a zoom, light within tolerance) passes everything
        assert outcome.failed == set(), f"{name}: {outcome.failed}"
        return
    assert outcome.case.expected <= outcome.failed, f"{name}: missed {outcome.case.expected - outcome.failed}"
    assert not outcome.film.passed or any(not r.passed for r in outcome.segments.values())


def test_calibration_tungsten_segment_reads_about_2800_kelvin_warmer(outcomes: dict[str, Outcome]) -> None:
    """The 3200 K segment is estimated far warmer than the 5600 K ones of its location (about 130 mired apart)."""
    light = {s.segment_id: s.kelvin for s in outcomes["tungsten"].film.segments}
    clean = {s.segment_id: s.kelvin for s in outcomes["clean"].film.segments}
    assert 1e6 / light["s2"] - 1e6 / clean["s2"] > 100
    jump = next(b for b in outcomes["tungsten"].film.boundaries if b.after == "s2")
    assert [f.kind for f in jump.findings] == ["light_jump"]
    assert jump.kelvin_after < 4000


def test_calibration_flash_frame_is_placed_in_time(outcomes: dict[str, Outcome]) -> None:
    (flash,) = outcomes["flash"].film.flash_frames
    assert (flash.frame, flash.segment_id, flash.time_s) == (FRAMES + 4, "s2", pytest.approx((FRAMES + 4) / FPS))
    assert "frame 4" in outcomes["flash"].segments["s2"].gates["flicker"].detail


def test_cut_detection_agrees_with_pyscenedetect(outcomes: dict[str, Outcome]) -> None:
    """Reelforge's cuts are the true cuts; PySceneDetect's AdaptiveDetector and HashDetector find the same frames.

    Its ContentDetector (fixed threshold 27) is in docs/qa.md too: it finds every cut between two
    places but misses the re-framed cut within the field and takes a flash frame for a cut.
    """
    for name, outcome in outcomes.items():
        ours = detect_cuts(read_film(outcome.film_path))
        assert ours == TRUE_CUTS[name], name
        assert pyscenedetect_cuts(outcome.film_path, "AdaptiveDetector") == ours, name
        assert pyscenedetect_cuts(outcome.film_path, "HashDetector") == ours, name
        content = pyscenedetect_cuts(outcome.film_path, "ContentDetector")
        assert {c for c in ours if c != 8} <= set(content), name


def test_real_encoder_dissolves_read_as_dissolves(tmp_path: Path) -> None:
    """The encoder's compile_film (ffmpeg xfade) joins the clean segments: no join is reported, dissolves are seen."""
    videos, _ = build(CASES[0], tmp_path / "segments")
    parts = [FilmPart(v.path, FRAMES, FPS, v.transition, v.transition_s) for v in videos]
    film = compile_film(parts, FPS, 320, 180, tmp_path / "film.mp4", Codec(ffmpeg_exe()))
    report = check_film(videos, film=film)
    assert [b.detected for b in report.boundaries] == ["cut", "dissolve", "cut", "dissolve"]
    assert report.passed, report.failures
    assert [p.segment_id for p in CLEAN] == [s.segment_id for s in report.segments]


def test_continuity_failures_ask_for_the_breaking_segment_again(outcomes: dict[str, Outcome]) -> None:
    """Film QA's policy names the segment that breaks continuity, within the attempt limit (issue 11, point 2)."""
    from reelforge_qa.film_regenerate import continuity_redos

    first = {sid: 1 for sid in ("s1", "s2", "s3", "s4", "s5")}
    assert continuity_redos(outcomes["clean"].film, first, 2) == []
    for case, segment in (("shirt", "s5"), ("person", "s5"), ("missing", "s5"), ("giant", "s5")):
        [redo] = continuity_redos(outcomes[case].film, first, 2)
        assert (redo.segment_id, redo.check) == (segment, "character:hero")
        assert "continuity: character:hero" in redo.reason
    assert "s2" in [r.segment_id for r in continuity_redos(outcomes["tungsten"].film, first, 2)]
    assert continuity_redos(outcomes["shirt"].film, first | {"s5": 2}, 2) == []  # no attempts left: delivered flagged
