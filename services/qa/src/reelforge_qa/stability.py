"""How stable continuity is: the same shot rendered and encoded again (only its sensor noise differs) against itself.

A score that moves when nothing but noise changed cannot choose between takes (issue 18 point 7). For
each calibration shot with a figure (``CLEAN``'s s1, s2, s4), :func:`repeats` renders it ``count`` times
with fresh sensor noise of ``sigma`` (8-bit units) on top of the synthetic camera's own, encodes each
repeat as its own segment and scores them all as one film: every pair is the same shot. ``python -m
reelforge_qa.stability [SIGMA] [COUNT]`` prints, per continuity component, the lowest score and the
spread (highest - lowest) across the pairs; docs/qa.md has the figures.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from reelforge_qa.calibration import CLEAN, FPS, FRAMES
from reelforge_qa.film_checks import SegmentVideo, check_film
from reelforge_qa.synthetic import encode, join, render_shot

FIGURE_SHOTS = tuple(part for part in CLEAN if part.characters)


def repeats(sigma: float = 2.0, count: int = 3, folder: Path | None = None) -> dict[tuple[str, str], list[float]]:
    """(check kind, component) -> the component's score of every pair of repeats of the same shot."""
    scores: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="reelforge-stability-") as tmp:
        out = folder or Path(tmp)
        for part in FIGURE_SHOTS:
            videos, clips = [], []
            for rep in range(count):
                rng = np.random.default_rng(1000 + rep)
                frames = [
                    np.clip(f + rng.normal(0, sigma, f.shape) + 0.5, 0, 255).astype(np.uint8)
                    for f in render_shot(part.shot, FRAMES)
                ]
                clips.append(frames)
                path = encode(frames, FPS, out / f"{part.segment_id}-{rep}.mp4")
                videos.append(SegmentVideo(path, f"{part.segment_id}.{rep}", part.characters, part.location, "cut", 0.0))
            film = check_film(videos, film=encode(join(clips, [0] * count), FPS, out / f"{part.segment_id}-film.mp4"))
            for check in [*film.characters, *film.locations]:
                for pair in check.pairs:
                    for component, value in pair.components.items():
                        scores.setdefault((check.kind, component), []).append(value)
    return scores


def table(scores: dict[tuple[str, str], list[float]]) -> str:
    lines = ["| check | component | lowest | spread | pairs |", "| --- | --- | --- | --- | --- |"]
    for (kind, component), values in sorted(scores.items()):
        lines.append(f"| {kind} | {component} | {min(values):.3f} | {max(values) - min(values):.3f} | {len(values)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sigma = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(table(repeats(sigma, count)))  # noqa: T201 - the script's output
