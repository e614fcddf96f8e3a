"""Takes: several renders of one shot, and the rule that puts the best of them into the film.

A segment with ``takes: N`` (the storyboard's ``style.takes`` by default) is rendered N times. Take ``k``
renders with the seed ``(seed + k * TAKE_SEED_STRIDE) mod 2**32``: take 0 is the segment's own seed, so
``takes: 1`` renders what it always did and take 0 keeps the shot key it always had. A segment with
``variants: [prompt, ...]`` renders its own prompt as take 0 and variant ``k`` as take ``k`` (1-based),
all with the segment's seed, so that only the prompt differs between them.

Each take is a unit of work of its own (``segment.requested`` with ``take`` and ``takes``; any
generator worker takes it), has its own shot key (reused through the shot store like any shot) and is
encoded and scored by segment QA. QA does not re-render a take that fails a gate: the other takes
are its alternatives. Once every take is checked, :func:`rank_takes` picks the one that goes into the
film; the others stay in the work bucket as alternates (``POST /v1/jobs/{id}/segments/{n}/takes/{k}/select``
puts one into the film as a new film version).

The policy: a take that passed every gate beats one that did not; among those, the highest mean of
its gate scores wins; a tie goes to the lowest take number.

Continuity against the job's cast and location references is not in the policy yet: segment QA
scores a take alone (its gates), and the references a take would be compared with are the cast
sheet's (issue 18 point 6, not built when this was written) or a character's ``reference_image``,
which segment QA does not open. Continuity is now stable enough to choose by (docs/qa.md,
"Stability"); the score joins the gate scores here once segment QA computes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reelforge_shared.events import QaReport
from reelforge_shared.storage import Keys, ObjectStore

MAX_TAKES = 8
# An odd constant (2**32 / golden ratio, rounded to odd): k * stride mod 2**32 is distinct for every k below 2**32,
# so no two takes of a segment share a seed, and the takes' seeds lie far from the +1 per segment of a seed family.
TAKE_SEED_STRIDE = 0x9E3779B1


def take_seed(seed: int, take: int) -> int:
    """The seed of take ``take`` of a shot whose own seed is ``seed`` (take 0: ``seed`` itself)."""
    return (seed + take * TAKE_SEED_STRIDE) % 2**32


@dataclass(frozen=True, slots=True)
class TakeScore:
    """What the policy reads of a checked take: whether it passed every gate, and its gate scores."""

    passed: bool
    scores: Mapping[str, float]
    failed: tuple[str, ...] = ()  # the gates it failed

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores) if self.scores else 0.0


def take_score(qa: QaReport) -> TakeScore:
    """What the policy reads of a take's QA report."""
    failed = tuple(sorted(name for name, gate in qa.gates.items() if not gate.passed))
    return TakeScore(qa.passed, {name: gate.score for name, gate in qa.gates.items()}, failed)


def checked_takes(store: ObjectStore, bucket: str, job_id: str, index: int, attempt: int, count: int) -> dict[int, QaReport]:
    """Segment QA's verdict on each of the ``count`` takes of a segment's attempt; empty until every take is checked.

    Segment QA stores a take's report and then its ``checked.json`` before it publishes ``segment.checked``, so
    whoever handles the last take's ``segment.checked`` finds all of them.
    """
    if not all(store.exists(bucket, Keys.segment_checked(job_id, index, attempt, k)) for k in range(count)):
        return {}
    return {k: QaReport.model_validate(store.get_json(bucket, Keys.segment_qa(job_id, index, attempt, k))) for k in range(count)}


@dataclass(frozen=True, slots=True)
class TakeVerdict:
    take: int
    won: bool
    reason: str


def rank_takes(takes: Mapping[int, TakeScore]) -> dict[int, TakeVerdict]:
    """Each take's verdict under the policy (module docstring): exactly one winner, every loser told why."""
    if not takes:
        raise ValueError("rank_takes needs at least one checked take")
    order = sorted(takes, key=lambda k: (not takes[k].passed, -round(takes[k].mean, 6), k))
    best = order[0]
    win = takes[best]
    verdicts = {best: TakeVerdict(best, True, _why_won(win, takes))}
    for k in order[1:]:
        verdicts[k] = TakeVerdict(k, False, _why_lost(k, takes[k], best, win))
    return verdicts


def _why_won(win: TakeScore, takes: Mapping[int, TakeScore]) -> str:
    if len(takes) == 1:
        return "the only take"
    gates = "passed every gate" if win.passed else "no take passed every gate"
    return f"{gates}; highest mean score {win.mean:.3f}"


def _why_lost(k: int, take: TakeScore, best: int, win: TakeScore) -> str:
    if win.passed and not take.passed:
        return f"failed {', '.join(take.failed) or 'a gate'}; take {best} passed every gate"
    if round(take.mean, 6) == round(win.mean, 6):
        return f"same mean score {take.mean:.3f} as take {best}; the lower take wins a tie"
    return f"mean score {take.mean:.3f} below take {best}'s {win.mean:.3f}"
