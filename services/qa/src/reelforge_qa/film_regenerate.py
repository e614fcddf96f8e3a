"""Film QA's regeneration policy: a segment that breaks continuity (character, location or light) is rendered again.

The film check judges pairs of segments; when a check fails, the segment that appears in most of its
failing pairs is the one that breaks it (a shirt that turns red in one segment fails every pair with
that segment and no other). Ties go to the later segment: the earlier ones set the look. Light is
judged against the location's median, so each failing segment is named directly.

Each such segment, while it has attempts left (``REELFORGE_QA_MAX_ATTEMPTS``), is asked again with a
new seed through ``segment.rerender_requested``: the same path as the API's re-render of one segment
(:mod:`reelforge_shared.jobs`), after which only its own pieces are encoded again and the film is
joined anew by copy, as a new version whose report shows the scores before and after. The request
carries a reference image: a frame of the best-matching segment of the same check (the one that
agrees best with the others, without the culprit): the encoder's still of it (``Keys.segment_thumbnail``),
else its middle frame stored under ``Keys.continuity_reference``; the
generator weighs it through the model's IP-Adapter, or conditions an image-to-video model on it, where
the model takes one (a model without either renders from the new seed alone).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import mean

import av

from reelforge_qa.film_models import ContinuityCheck, FilmQaReport

# Checks whose failure asks for a segment again: all of continuity.
REGENERATE_FOR = ("character", "location", "light")


@dataclass(frozen=True, slots=True)
class ContinuityRedo:
    segment_id: str
    check: str  # "character:hero": the first check it broke (characters, then locations, then light)
    score: float  # the segment's worst judged pair in that check (light: its score against the location's median)
    reason: str
    reference: str | None = None  # segment id of the best-matching segment, whose frame steers the new render
    broken: dict[str, float] = field(default_factory=dict)  # every check it broke -> its worst score there


def _checks(report: FilmQaReport) -> tuple[ContinuityCheck, ...]:
    return (*report.characters, *report.locations, *report.light)


def segment_score(report: FilmQaReport, check: str, segment_id: str) -> float | None:
    """The worst judged pair of ``segment_id`` in the check named ``kind:name`` (None: not judged there)."""
    found = next((c for c in _checks(report) if f"{c.kind}:{c.name}" == check), None)
    scores = [p.score for p in found.pairs if p.gated and segment_id in (p.a, p.b)] if found else []
    return min(scores) if scores else None


def best_match(check: ContinuityCheck, culprit: str, order: dict[str, int], places: dict[str, str | None]) -> str | None:
    """The segment of the check that agrees best with the others (pairs with the culprit left out).

    One at the culprit's own location first (a character's reference should not bring another place
    with it); ties go to the earliest.
    """

    def agreement(segment_id: str) -> float:
        scores = [p.score for p in check.pairs if p.gated and segment_id in (p.a, p.b) and culprit not in (p.a, p.b)]
        return mean(scores) if scores else -1.0

    others = [s for s in check.segments if s != culprit and s in order]
    here = places.get(culprit)
    return max(others, key=lambda s: (places.get(s) == here, agreement(s), -order[s])) if others else None


def continuity_redos(report: FilmQaReport, attempts: dict[str, int], max_attempts: int) -> list[ContinuityRedo]:
    """The segments to render again for the film's failed continuity checks, one each, in film order.

    A segment that broke several checks (a tungsten-lit segment changes the character's colours too) is
    rendered again once; its reference comes from the first check it broke (characters, locations, light).
    """
    order = {s.segment_id: i for i, s in enumerate(report.segments)}
    places = {s.segment_id: s.location for s in report.segments}
    chosen: dict[str, ContinuityRedo] = {}
    for check in _checks(report):
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
            if attempts.get(segment_id, 1) >= max_attempts:
                continue
            worst = min(p.score for p in failing if segment_id in (p.a, p.b))
            name = f"{check.kind}:{check.name}"
            why = f"{name} {worst:.2f} < {check.threshold} ({check.detail})"
            if (earlier := chosen.get(segment_id)) is not None:  # one re-render for everything it broke
                chosen[segment_id] = replace(earlier, reason=f"{earlier.reason}; {why}", broken=earlier.broken | {name: worst})
            else:
                reference = best_match(check, segment_id, order, places)
                chosen[segment_id] = ContinuityRedo(segment_id, name, worst, f"continuity: {why}", reference, {name: worst})
    redos = sorted(chosen.values(), key=lambda r: order[r.segment_id])
    return [replace(r, reason=f"{r.reason}; reference: a frame of {r.reference}") if r.reference else r for r in redos]


def middle_frame_png(video: Path) -> bytes:
    """The middle frame of a video as PNG (RGB): the reference a re-render is steered by."""
    with av.open(str(video)) as container:
        count = container.streams.video[0].frames  # from the MP4's index; 0 where the container does not say
    if not count:
        with av.open(str(video)) as container:
            count = sum(1 for _ in container.decode(video=0))
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == count // 2:
                out = io.BytesIO()
                frame.to_image().save(out, format="PNG")
                return out.getvalue()
    raise ValueError(f"{video} has no frames")
