"""The calibration set: a clean five-segment film, films with one known fault each, and clean variations.

Every fault must be caught by the check meant for it and the clean film must pass everything;
``python -m reelforge_qa.calibration DIR`` writes the films to DIR and prints the tables of
docs/qa.md (the tests assert the same). The film: a figure in a blue shirt in a field (s1, s2),
the empty field (s3, dissolving in), the figure in a barn (s4), the figure back in the field
(s5, dissolving in); 320x180, 4 fps, 2 s per segment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from reelforge_qa.film_checks import FilmQaReport, SegmentVideo, check_film
from reelforge_qa.gates import Thresholds
from reelforge_qa.scores import Expected, score_video
from reelforge_qa.synthetic import HEIGHT, WIDTH, Shot, encode, join, render_shot
from reelforge_qa.transitions import detect_cuts, read_film
from reelforge_shared.events import QaReport

FPS, FRAMES = 4.0, 8


@dataclass(frozen=True, slots=True)
class Part:
    segment_id: str
    shot: Shot
    characters: tuple[str, ...]
    location: str
    transition: Literal["cut", "dissolve", "fade"] = "cut"
    transition_s: float = 0.0


CLEAN = (
    Part("s1", Shot(start_x=40, walk=60, seed=1), ("hero",), "field"),
    Part("s2", Shot(start_x=220, walk=-60, scale=1.3, pan_start=20, tilt=8, seed=2), ("hero",), "field"),
    Part("s3", Shot(figure=False, seed=3), (), "field", "dissolve", 1.0),
    Part("s4", Shot(location="barn", start_x=90, walk=40, scale=1.1, seed=4), ("hero",), "barn"),
    Part("s5", Shot(start_x=120, walk=70, scale=0.9, seed=5), ("hero",), "field", "dissolve", 1.0),
)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    fault: str
    changes: dict[str, dict]  # segment id -> Shot fields to replace
    expected: frozenset[str]  # check names that must fail (see :func:`failed_checks`)
    cut_instead_of_dissolve: str | None = None  # segment whose dissolve the film replaces by a cut


_FIELD_LIGHT = frozenset({"light:field", "light_jump:s1->s2"})
CASES = (
    Case("clean", "none", {}, frozenset()),
    Case("shirt", "s5's shirt is red, blue elsewhere", {"s5": {"shirt": (180, 40, 35)}}, frozenset({"character:hero"})),
    Case("blur", "s2 blurred (Gaussian sigma 2.5 px)", {"s2": {"blur": 2.5}}, frozenset({"s2:sharpness"})),
    Case("overexposed", "s2 1.6 stops over (3x exposure)", {"s2": {"gain": 3.0}}, frozenset({"s2:exposure"})),
    Case("flash", "s2 frame 4 eight times too bright", {"s2": {"flash_frame": 4}}, frozenset({"s2:flicker", "flash_frame:s2"})),
    Case("hard_cut", "s5's dissolve joined with a hard cut", {}, frozenset({"hard_cut_for_dissolve:s4->s5"}), "s5"),
    Case("tungsten", "s2 lit at 3200 K, the rest at 5600 K", {"s2": {"kelvin": 3200.0}}, _FIELD_LIGHT),
    Case(
        "location",
        "s5 shows the hero in the barn where the storyboard says field",
        {"s5": {"location": "barn"}},
        frozenset({"location:field"}),
    ),
    # Character identity on the character (issue 11): each fault alone among clean segments, and clean variations.
    Case(
        "person",
        "s5 shows another man: fair hair, 1.6 times as broad",
        {"s5": {"hair": (230, 200, 120), "build": 1.6}},
        frozenset({"character:hero"}),
    ),
    Case("missing", "s5 shows the field without the hero", {"s5": {"figure": False}}, frozenset({"character:hero"})),
    Case("giant", "s5 shows the hero 2.4 times as tall", {"s5": {"scale": 2.4}}, frozenset({"character:hero"})),
    Case("zoom", "clean: s5's camera zooms in 1.25 times", {"s5": {"zoom": 1.25}}, frozenset()),
    Case("light_5000", "clean: s2 lit at 5000 K (within tolerance)", {"s2": {"kelvin": 5000.0}}, frozenset()),
)


@dataclass(slots=True)
class Outcome:
    case: Case
    segments: dict[str, QaReport]
    film: FilmQaReport
    film_path: Path
    failed: set[str]


def failed_checks(segments: dict[str, QaReport], film: FilmQaReport) -> set[str]:
    """Names of everything that failed: 'sN:gate', 'character:NAME', 'light_jump:sA->sB', 'flash_frame:sN'..."""
    failed = {f"{sid}:{name}" for sid, report in segments.items() for name, gate in report.gates.items() if not gate.passed}
    failed |= {f"{c.kind}:{c.name}" for c in (*film.characters, *film.locations, *film.light) if not c.passed}
    failed |= {f"{f.kind}:{b.before}->{b.after}" for b in film.boundaries for f in b.findings if f.kind != "flash_frame"}
    failed |= {f"flash_frame:{f.segment_id}" for f in film.flash_frames}
    return failed


def build(case: Case, folder: Path) -> tuple[list[SegmentVideo], Path]:
    """Write the case's segments and film to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    clips, dissolves, videos = [], [], []
    for part in CLEAN:
        shot = replace(part.shot, **case.changes.get(part.segment_id, {}))
        frames = render_shot(shot, FRAMES)
        clips.append(frames)
        as_cut = case.cut_instead_of_dissolve == part.segment_id
        dissolves.append(0 if as_cut or part.transition != "dissolve" else round(part.transition_s * FPS))
        path = encode(frames, FPS, folder / f"{part.segment_id}.mp4")
        videos.append(SegmentVideo(path, part.segment_id, part.characters, part.location, part.transition, part.transition_s))
    return videos, encode(join(clips, dissolves), FPS, folder / "film.mp4")


def run_case(case: Case, folder: Path) -> Outcome:
    videos, film_path = build(case, folder)
    expected = Expected(WIDTH, HEIGHT, FPS, FRAMES)
    segments = {v.segment_id: score_video(v.path, expected, Thresholds()) for v in videos}
    film = check_film(videos, film=film_path)
    return Outcome(case, segments, film, film_path, failed_checks(segments, film))


PYSCENEDETECT = ("AdaptiveDetector", "ContentDetector", "HashDetector")


def pyscenedetect_cuts(path: Path, detector: str) -> list[int]:
    """First frames of new scenes by a PySceneDetect detector at its defaults, minimum scene 0.5 s
    (its default of 15 frames is 0.5 s at 30 fps; 15 frames would hide every cut in a 4 fps film)."""
    import scenedetect

    scenes = scenedetect.detect(str(path), getattr(scenedetect, detector)(min_scene_len=0.5), backend="pyav")
    return [start.frame_num for start, _ in scenes[1:]]


def figure(outcome: Outcome, check: str) -> str:
    """The number behind a check name, for the tables: a score, a join's cut share, a flash frame's frame."""
    kind, _, what = check.partition(":")
    film = outcome.film
    if kind in outcome.segments:
        return f"{outcome.segments[kind].gates[what].score:.2f}"
    if kind in ("character", "location", "light"):
        found = next(c for c in (*film.characters, *film.locations, *film.light) if (c.kind, c.name) == (kind, what))
        return "-" if found.score is None else f"{found.score:.2f}"
    if kind == "flash_frame":
        return ", ".join(f"frame {f.frame}" for f in film.flash_frames if f.segment_id == what)
    before, after = what.split("->")
    join = next(b for b in film.boundaries if (b.before, b.after) == (before, after))
    return f"cut share {join.cut_share:.2f}" if kind.startswith("hard_cut") else f"{join.light_score:.2f}"


def tables(outcomes: list[Outcome]) -> str:
    rows = ["| case | fault | must fail | caught (figure) | also failed (figure) |", "| --- | --- | --- | --- | --- |"]
    for o in outcomes:
        caught = ", ".join(f"{c} ({figure(o, c)})" for c in sorted(o.case.expected))
        if not (o.case.expected <= o.failed):
            caught = "NO"
        elif not o.case.expected:
            caught = "passes everything" if not o.failed else "NO"
        extra = ", ".join(f"{c} ({figure(o, c)})" for c in sorted(o.failed - o.case.expected)) or "-"
        rows.append(f"| {o.case.name} | {o.case.fault} | {', '.join(sorted(o.case.expected)) or '-'} | {caught} | {extra} |")
    clean = next(o for o in outcomes if o.case.name == "clean")
    rows += ["", "| clean film: worst score | value | threshold |", "| --- | --- | --- |"]
    for name in next(iter(clean.segments.values())).gates:
        worst = min(clean.segments.values(), key=lambda r: r.gates[name].score).gates[name]
        rows.append(f"| gate {name} | {worst.score:.2f} | {worst.threshold} |")
    for check in (*clean.film.characters, *clean.film.locations, *clean.film.light):
        if check.score is not None:
            rows.append(f"| {check.kind} {check.name} | {check.score:.2f} | {check.threshold} |")
    light = min(b.light_score for b in clean.film.boundaries if b.same_location)
    rows.append(f"| joins (light) | {light:.2f} | {clean.film.threshold} |")
    rows += ["", "| film | hard cuts: Reelforge | " + " | ".join(PYSCENEDETECT) + " |", "| --- " * (2 + len(PYSCENEDETECT)) + "|"]
    for o in outcomes:
        ours = detect_cuts(read_film(o.film_path))
        theirs = [pyscenedetect_cuts(o.film_path, name) for name in PYSCENEDETECT]
        cells = [f"{t}" + ("" if t == ours else " (differs)") for t in theirs]
        rows.append(f"| {o.case.name} | {ours} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "calibration")
    sys.stdout.write(tables([run_case(case, root / case.name) for case in CASES]) + "\n")
