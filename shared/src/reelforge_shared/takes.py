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

The policy: a take that passed every gate beats one that did not; among those, the highest *take score* wins,
and a tie goes to the lowest take number. The take score is

    (1 - CONTINUITY_WEIGHT) * mean gate score + CONTINUITY_WEIGHT * reference continuity    (CONTINUITY_WEIGHT = 0.5)

where the reference continuity is segment QA's score of the take against the job's cast and location references
(``QaReport.continuity``: the mean over the characters and the location the segment shows that have a
``reference_image`` or a cast sheet; ``reelforge_qa.references``). When any take compared has no such score
(the segment shows nothing with a reference, or the model drew no sheet), every take is compared by its mean gate
score alone, as before. Equal weights: both scores lie in [0, 1]; among takes that passed every gate the gate
means differ by a few hundredths (they all look like pictures), while continuity against the sheet tells the take
that shows the right character from one that does not (about 0.95 against 0 on the synthetic sets, docs/qa.md), so
continuity decides between good takes and a much better picture can still outweigh a small continuity difference.
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


CONTINUITY_WEIGHT = 0.5  # the share of reference continuity in the take score (module docstring)


@dataclass(frozen=True, slots=True)
class TakeScore:
    """What the policy reads of a checked take: whether it passed every gate, its gate scores and its continuity
    against the job's references (None: nothing it shows has a reference)."""

    passed: bool
    scores: Mapping[str, float]
    failed: tuple[str, ...] = ()  # the gates it failed
    continuity: float | None = None

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores) if self.scores else 0.0

    def score(self, with_continuity: bool) -> float:
        """The take score (module docstring); the mean gate score alone when continuity is not compared."""
        if not with_continuity or self.continuity is None:
            return self.mean
        return (1 - CONTINUITY_WEIGHT) * self.mean + CONTINUITY_WEIGHT * self.continuity


def take_score(qa: QaReport) -> TakeScore:
    """What the policy reads of a take's QA report."""
    failed = tuple(sorted(name for name, gate in qa.gates.items() if not gate.passed))
    return TakeScore(qa.passed, {name: gate.score for name, gate in qa.gates.items()}, failed, qa.continuity)


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
    both = all(t.continuity is not None for t in takes.values())
    order = sorted(takes, key=lambda k: (not takes[k].passed, -round(takes[k].score(both), 6), k))
    best = order[0]
    win = takes[best]
    verdicts = {best: TakeVerdict(best, True, _why_won(win, takes, both))}
    for k in order[1:]:
        verdicts[k] = TakeVerdict(k, False, _why_lost(k, takes[k], best, win, both))
    return verdicts


def _said(take: TakeScore, both: bool) -> str:
    """A take's score in words: the take score and its two parts, or the mean gate score alone."""
    if not both:
        return f"mean score {take.mean:.3f}"
    return (
        f"score {take.score(True):.3f} (mean gate score {take.mean:.3f}, continuity {take.continuity:.3f} against the references)"
    )


def _why_won(win: TakeScore, takes: Mapping[int, TakeScore], both: bool) -> str:
    if len(takes) == 1:
        return "the only take"
    gates = "passed every gate" if win.passed else "no take passed every gate"
    return f"{gates}; highest {_said(win, both)}"


def _why_lost(k: int, take: TakeScore, best: int, win: TakeScore, both: bool) -> str:
    if win.passed and not take.passed:
        return f"failed {', '.join(take.failed) or 'a gate'}; take {best} passed every gate"
    if round(take.score(both), 6) == round(win.score(both), 6):
        return f"same {_said(take, both)} as take {best}; the lower take wins a tie"
    lost = f"{_said(take, both)} below take {best}'s {win.score(both):.3f}"
    if both and take.mean >= win.mean and win.continuity is not None and take.continuity is not None:
        lost += f": take {best} is closer to the references ({win.continuity:.3f} against {take.continuity:.3f})"
    return lost
