"""How stable continuity is: the same shot against itself, rendered, encoded or framed again, and against another character.

A score that moves when nothing but noise changed cannot choose between takes (issue 18 point 7).
These sets are held out: the thresholds and scales of the checks were picked on the calibration set
(:mod:`reelforge_qa.calibration`), never on these. For each calibration shot with a figure
(``CLEAN``'s s1, s2, s4, s5), a *variation* makes ``count`` versions of the same shot, encodes each as
its own segment and scores them all as one film, so every pair is the same shot:

- ``noise``: fresh sensor noise of ``sigma`` (8-bit units) on top of the synthetic camera's own;
- ``compression``: the same frames encoded at CRF 18, 23, 28 ... (the encoder's segments are CRF 18);
- ``camera``: the camera moved a few pixels (pan up to 4 px, tilt 3 px up or 1 down: a take framed a little
  differently; 3 px up takes the barn's pale door out of the border ring).

Each version is encoded in a process of its own (:func:`encode_alone`), as the encoder encodes each segment (a fresh
ffmpeg): libx264 through PyAV, called again and again in one process, gave the same frames other bitstreams once
that process had encoded other clips before (seen: shot s1's shape component under noise moved between 0.93 and
0.97 from one measurement to the next), so the figures depended on what the process had done before.

``different`` scores each shot against the same shot with another character in it (a red shirt;
another man, fair-haired and 1.6 times as broad): the character check's score (its lowest
component) must stay clearly below the same shot's. ``python -m reelforge_qa.stability [SIGMA]
[COUNT]`` prints, per variation and continuity component, the lowest score and the spread (highest
- lowest) across the pairs, then the discrimination margin; docs/qa.md has the figures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reelforge_qa.calibration import CLEAN, FPS, FRAMES, Part
from reelforge_qa.descriptors import describe
from reelforge_qa.film_checks import SegmentVideo, check_film
from reelforge_qa.film_subject import describe_subject
from reelforge_qa.frames import colour_sample
from reelforge_qa.references import Wanted, decode_still, describe_reference, score_reference
from reelforge_qa.synthetic import PAN_MARGIN, TILT_MARGIN, Shot, render_shot

FIGURE_SHOTS = tuple(part for part in CLEAN if part.characters)
CRFS = (18, 23, 28, 20)
CAMERA_MOVES = ((0, 0), (4, -3), (-4, 0), (2, 1))  # (pan, tilt) in pixels, tilt < 0 is up; the test uses the first three
OTHER_CHARACTERS: dict[str, dict[str, Any]] = {
    "red shirt": {"shirt": (180, 40, 35)},
    "another man": {"hair": (230, 200, 120), "build": 1.6},
}

Scores = dict[tuple[str, str], list[float]]  # (check kind, component) -> score of every pair
Version = Callable[[Part, int], tuple[list[np.ndarray], int]]  # (shot, repeat) -> frames, CRF


def _noisy(frames: list[np.ndarray], sigma: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape) + 0.5, 0, 255).astype(np.uint8) for f in frames]


def encode_alone(frames: list[np.ndarray], fps: float, path: Path, crf: int = 18) -> Path:
    """``synthetic.encode`` in a new interpreter (``python -m reelforge_qa.synthetic``): the bitstream depends on the
    frames and settings only, not on what this process encoded before."""
    frames_file = path.with_suffix(".npy")
    np.save(frames_file, np.stack(frames))
    command = [sys.executable, "-m", "reelforge_qa.synthetic", str(frames_file), repr(fps), str(path), str(crf)]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - this interpreter, our own module
    frames_file.unlink()
    return path


def _moved(shot: Shot, rep: int) -> Shot:
    pan, tilt = CAMERA_MOVES[rep % len(CAMERA_MOVES)]
    return replace(
        shot,
        pan_start=int(np.clip(shot.pan_start + pan, 0, PAN_MARGIN // 2)),
        tilt=int(np.clip(shot.tilt + tilt, 0, TILT_MARGIN)),
    )


def variations(sigma: float) -> dict[str, Version]:
    return {
        "noise": lambda part, rep: (_noisy(render_shot(part.shot, FRAMES), sigma, 1000 + rep), 18),
        "compression": lambda part, rep: (render_shot(part.shot, FRAMES), CRFS[rep % len(CRFS)]),
        "camera": lambda part, rep: (render_shot(_moved(part.shot, rep), FRAMES), 18),
    }


def _score(videos: list[SegmentVideo]) -> Scores:
    scores: Scores = {}
    film = check_film(videos)
    for check in [*film.characters, *film.locations]:
        for pair in check.pairs:
            for component, value in pair.components.items():
                scores.setdefault((check.kind, component), []).append(value)
    return scores


def repeats(version: Version, count: int, out: Path) -> Scores:
    """Every pair of ``count`` versions of each figure shot, scored as one film per shot."""
    scores: Scores = {}
    for part in FIGURE_SHOTS:
        videos = []
        for rep in range(count):
            frames, crf = version(part, rep)
            path = encode_alone(frames, FPS, out / f"{part.segment_id}-{rep}.mp4", crf=crf)
            videos.append(SegmentVideo(path, f"{part.segment_id}.{rep}", part.characters, part.location))
        for key, values in _score(videos).items():
            scores.setdefault(key, []).extend(values)
    return scores


def different(out: Path) -> dict[str, list[float]]:
    """Character check score of each figure shot against the same shot with another character, by character."""
    scores: dict[str, list[float]] = {}
    for part in FIGURE_SHOTS:
        original = encode_alone(render_shot(part.shot, FRAMES), FPS, out / f"{part.segment_id}.mp4")
        for name, change in OTHER_CHARACTERS.items():
            changed = render_shot(replace(part.shot, **change), FRAMES)
            other = encode_alone(changed, FPS, out / f"{part.segment_id}-{len(scores)}.mp4")
            videos = [
                SegmentVideo(p, f"{part.segment_id}.{i}", part.characters, part.location) for i, p in enumerate((original, other))
            ]
            film = check_film(videos)
            scores.setdefault(name, []).extend(pair.score for check in film.characters for pair in check.pairs)
    return scores


def measure(sigma: float = 2.0, count: int = 3) -> tuple[dict[str, Scores], dict[str, list[float]]]:
    with tempfile.TemporaryDirectory(prefix="reelforge-stability-") as tmp:
        same = {}
        for name, version in variations(sigma).items():
            (Path(tmp) / name).mkdir()
            same[name] = repeats(version, count, Path(tmp) / name)
        (Path(tmp) / "different").mkdir()
        return same, different(Path(tmp) / "different")


HELD_FRAMES = 12  # a segment that holds its reference still (an image-to-video start frame that does not move)


def _png(frame: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", frame)
    if not ok:
        raise ValueError("the still did not encode")
    return data.tobytes()


def against_references(sigma: float = 2.0, count: int = 3) -> tuple[Scores, dict[str, list[float]]]:
    """Continuity against the references (reelforge_qa.references): the same picture as its sheet, and another.

    For each figure shot, its middle frame with sensor noise of ``sigma`` is the reference (a lossless PNG, as the
    generator stores a sheet); a segment that holds that frame, with fresh noise of ``sigma`` per frame, encoded at
    CRF 18, 23, 28 and 20 (``count`` of them), is scored against it as the character's and the location's reference:
    (kind, component) -> every score. Beside it, the character score of the shot with another character in it
    against the original's reference, by character.
    """
    same: Scores = {}
    other: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="reelforge-stability-references-") as tmp:
        for part in FIGURE_SHOTS:
            clean = render_shot(part.shot, FRAMES)[FRAMES // 2]
            still = decode_still(_png(_noisy([clean], sigma, 99)[0]))
            refs = [describe_reference(Wanted(kind, kind, "cast_sheet", "still"), still) for kind in ("character", "location")]
            held = [_noisy([clean] * HELD_FRAMES, sigma, 2000 + rep) for rep in range(count)]
            changed = {name: render_shot(replace(part.shot, **change), FRAMES) for name, change in OTHER_CHARACTERS.items()}
            for rep, frames in enumerate(held):
                path = encode_alone(frames, FPS, Path(tmp, f"{part.segment_id}-{rep}.mp4"), crf=CRFS[rep % len(CRFS)])
                sample = colour_sample(path, 8)
                subject, descriptor = describe_subject(sample.frames), describe(sample.frames)
                for ref in refs:
                    for component, value in score_reference(ref, subject, descriptor).components.items():
                        same.setdefault((ref.wanted.kind, component), []).append(value)
            for name, frames in changed.items():
                path = encode_alone(frames, FPS, Path(tmp, f"{part.segment_id}-{name}.mp4"))
                sample = colour_sample(path, 8)
                scored = score_reference(refs[0], describe_subject(sample.frames), describe(sample.frames))
                other.setdefault(name, []).append(scored.score if scored.score is not None else 0.0)
    return same, other


def lowest_character_score(same: dict[str, Scores]) -> float:
    """The lowest character component of any pair of versions of one shot: the floor of a clean take's score."""
    return min(min(v) for scores in same.values() for (kind, _), v in scores.items() if kind == "character")


def table(same: dict[str, Scores], other: dict[str, list[float]]) -> str:
    lines = ["| variation | check | component | lowest | spread | pairs |", "| --- | --- | --- | --- | --- | --- |"]
    for variation, scores in same.items():
        for (kind, component), values in sorted(scores.items()):
            low, spread = min(values), max(values) - min(values)
            lines.append(f"| {variation} | {kind} | {component} | {low:.3f} | {spread:.3f} | {len(values)} |")
    lines += ["", "| another character | character score: highest | lowest | pairs |", "| --- | --- | --- | --- |"]
    for name, values in other.items():
        lines.append(f"| {name} | {max(values):.3f} | {min(values):.3f} | {len(values)} |")
    highest = max(max(v) for v in other.values())
    floor = lowest_character_score(same)
    lines.append(f"\nmargin: the same shot's lowest character component {floor:.3f} - another character's highest {highest:.3f}")
    lines.append(f"= {floor - highest:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sigma = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(table(*measure(sigma, count)))  # noqa: T201 - the script's output
    print("\nagainst the references (a segment holding its reference still):")  # noqa: T201 - the script's output
    print(table({"held still": (refs := against_references(sigma, count))[0]}, refs[1]))  # noqa: T201 - the script's output
