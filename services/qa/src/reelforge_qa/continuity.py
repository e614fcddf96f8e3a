"""Continuity across segments: each character, each location, the light at each location.

A character is compared *on the character*: the subject localised in each segment
(:mod:`film_subject`: foreground against the location's colours, motion against the registered
camera) is compared by its colours (CIELAB), texture, shape (build) and scale, and, when an
image-embedding model is configured, by the embeddings of its crops; the lowest component counts.
A pair is judged when both segments have the same cast (with two characters in a shot the
subject found may be either of them); other pairs are shown, not judged. A character the
storyboard puts in a segment where no subject is found scores 0. A location is compared by colour, layout (SSIM) and ORB
features (and the embedding), averaged. Light is compared within a location: each segment's
colour temperature and level against the location's median.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from statistics import median

import numpy as np

from reelforge_qa import descriptors as d
from reelforge_qa.film_models import ContinuityCheck, PairScore
from reelforge_qa.film_subject import Subject, subject_scores
from reelforge_shared.colour import mired

MIRED_SCALE = 200.0  # 30 mired off (a visible shift, about a quarter CTO gel) scores 0.85
STOP_PENALTY = 0.3  # half a stop brighter or darker scores 0.85
NO_LOCATION = "(no location)"


@dataclass(frozen=True, slots=True)
class Described:
    segment_id: str
    characters: tuple[str, ...]
    location: str | None
    descriptor: d.Descriptor
    subject: Subject | None = None
    subject_embedding: np.ndarray | None = None


def light_score(kelvin_a: float, key_a: float, kelvin_b: float, key_b: float) -> tuple[float, float, float]:
    """Score, mired difference, stops difference."""
    delta_mired = abs(mired(kelvin_a) - mired(kelvin_b))
    stops = abs(float(np.log2(max(key_a, 1e-4) / max(key_b, 1e-4))))
    score = min(1.0 - delta_mired / MIRED_SCALE, 1.0 - stops * STOP_PENALTY)
    return float(np.clip(score, 0.0, 1.0)), delta_mired, stops


def _check(kind: str, name: str, members: Sequence[Described], pairs: list[PairScore], threshold: float) -> ContinuityCheck:
    judged = [p for p in pairs if p.gated]
    ids = [m.segment_id for m in members]
    if not judged:
        why = "appears once" if len(members) < 2 else "no two of its segments share a location"
        if kind == "character" and len(members) > 1:
            why = "no two of its segments have the same cast"
        return ContinuityCheck(
            kind=kind, name=name, segments=ids, score=None, threshold=threshold, passed=True, detail=why, pairs=pairs
        )
    worst = min(judged, key=lambda p: p.score)
    passed = worst.score >= threshold
    detail = f"worst {worst.a} vs {worst.b}: {worst.score:.3f}" + ("" if passed else f" (below {threshold})")
    return ContinuityCheck(
        kind=kind, name=name, segments=ids, score=worst.score, threshold=threshold, passed=passed, detail=detail, pairs=pairs
    )


def _round(values: dict[str, float | None]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items() if v is not None}


def character_checks(items: Sequence[Described], threshold: float) -> list[ContinuityCheck]:
    names = sorted({c for item in items for c in item.characters})
    checks = []
    for name in names:
        members = [item for item in items if name in item.characters]
        pairs = []
        for a, b in combinations(members, 2):
            parts: dict[str, float] = {}
            if a.subject is not None and b.subject is not None:
                parts |= subject_scores(a.subject, b.subject)
            if a.subject_embedding is not None and b.subject_embedding is not None:
                parts["embedding"] = round(float(np.clip(np.dot(a.subject_embedding, b.subject_embedding), 0.0, 1.0)), 4)
            gated = set(a.characters) == set(b.characters)
            pairs.append(PairScore(a=a.segment_id, b=b.segment_id, score=min(parts.values()), components=parts, gated=gated))
        checks.append(_check("character", name, members, pairs, threshold))
    return checks


def _groups(items: Sequence[Described]) -> dict[str, list[Described]]:
    groups: dict[str, list[Described]] = {}
    for item in items:
        groups.setdefault(item.location or NO_LOCATION, []).append(item)
    return groups


NEIGHBOURS = 2  # a location's segment is compared with the next two there, and with the first one


def _location_pairs(members: Sequence[Described]) -> list[tuple[Described, Described]]:
    """Which segments of one location are compared: each with its next two there and with the first.

    Every pair of a 33-segment film at one place is 528 comparisons (the tail of the film check);
    neighbours catch a segment that differs from those around it, the first one catches a slow drift.
    """
    if len(members) <= NEIGHBOURS + 2:
        return list(combinations(members, 2))
    chosen = {(i, j) for i in range(len(members)) for j in range(i + 1, min(len(members), i + 1 + NEIGHBOURS))}
    chosen |= {(0, j) for j in range(1, len(members))}
    return [(members[i], members[j]) for i, j in sorted(chosen)]


def location_checks(items: Sequence[Described], threshold: float) -> list[ContinuityCheck]:
    checks = []
    for name, members in _groups(items).items():
        if name == NO_LOCATION:
            continue  # unnamed places are not one place
        pairs = []
        for a, b in _location_pairs(members):
            x, y = a.descriptor, b.descriptor
            parts = _round(
                {
                    "colour": d.colour(x, y),
                    "structure": d.structure(x, y),
                    "features": d.features(x, y),
                    "embedding": d.embedding(x, y),
                }
            )
            score = round(float(np.mean(list(parts.values()))), 4)
            pairs.append(PairScore(a=a.segment_id, b=b.segment_id, score=score, components=parts))
        checks.append(_check("location", name, members, pairs, threshold))
    return checks


def light_checks(items: Sequence[Described], threshold: float) -> list[ContinuityCheck]:
    """Within each location (segments without one form one group), every segment against the median."""
    checks = []
    for name, members in _groups(items).items():
        ref_mired = median(m.descriptor.mired for m in members)
        ref_key = median(m.descriptor.key for m in members)
        pairs = []
        for m in members:
            score, delta_mired, stops = light_score(m.descriptor.kelvin, m.descriptor.key, 1e6 / ref_mired, ref_key)
            parts = {"kelvin": round(m.descriptor.kelvin), "mired_off": round(delta_mired, 1), "stops_off": round(stops, 2)}
            judged = len(members) > 1
            pairs.append(PairScore(a=m.segment_id, b="location median", score=round(score, 4), components=parts, gated=judged))
        check = _check("light", name, members, pairs, threshold)
        check.detail += f"; median {1e6 / ref_mired:.0f} K"
        checks.append(check)
    return checks
