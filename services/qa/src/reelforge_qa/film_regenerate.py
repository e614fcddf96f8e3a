"""Film QA's regeneration policy: a segment that breaks continuity (character, light) is rendered again.

The film check judges pairs of segments; when a check fails, the segment that appears in most of its
failing pairs is the one that breaks it (a shirt that turns red in one segment fails every pair with
that segment and no other). Ties go to the later segment: the earlier ones set the look. Light is
judged against the location's median, so each failing segment is named directly.

Each such segment, while it has attempts left (``REELFORGE_QA_MAX_ATTEMPTS``), is asked again with a
new seed through ``segment.rerender_requested``: the same path as the API's re-render of one segment
(:mod:`reelforge_shared.rerender`), after which only its own pieces are encoded again and the film is
joined anew by copy, as a new version whose report shows the scores before and after.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reelforge_qa.film_models import FilmQaReport

# Checks whose failure asks for a segment again. Not location: its whole-frame descriptors have the
# thinnest margin (docs/qa.md) and fail on any noise-like picture (the tiny model's), where a new seed
# cannot help; a location failure is reported, and re-rendered only through the API.
REGENERATE_FOR = ("character", "light")


@dataclass(frozen=True, slots=True)
class ContinuityRedo:
    segment_id: str
    check: str  # "character:hero"
    score: float
    reason: str


def continuity_redos(report: FilmQaReport, attempts: dict[str, int], max_attempts: int) -> list[ContinuityRedo]:
    """The segments to render again for the film's failed continuity checks, one each, in film order."""
    order = {s.segment_id: i for i, s in enumerate(report.segments)}
    chosen: dict[str, ContinuityRedo] = {}
    for check in (*report.characters, *report.locations, *report.light):
        if check.passed or check.score is None or check.kind not in REGENERATE_FOR:
            continue
        failing = [p for p in check.pairs if p.gated and p.score < check.threshold]
        counts = Counter(s for p in failing for s in (p.a, p.b) if s in order)
        if not counts:
            continue
        if check.kind == "light":
            culprits = list(counts)
        else:
            top = max(counts.values())
            culprits = [max((s for s, n in counts.items() if n == top), key=order.__getitem__)]
        for segment_id in culprits:
            if segment_id in chosen or attempts.get(segment_id, 1) >= max_attempts:
                continue
            worst = min(p.score for p in failing if segment_id in (p.a, p.b))
            name = f"{check.kind}:{check.name}"
            reason = f"continuity: {name} {worst:.2f} < {check.threshold} ({check.detail})"
            chosen[segment_id] = ContinuityRedo(segment_id, name, worst, reason)
    return sorted(chosen.values(), key=lambda r: order[r.segment_id])
