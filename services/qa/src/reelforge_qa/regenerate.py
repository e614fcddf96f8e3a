"""Regenerate or deliver: what happens to a segment after its gates are read.

A segment that fails a gate goes back to the generator with a new seed and ``attempt + 1``, up to
``REELFORGE_QA_MAX_ATTEMPTS`` attempts in all (default 2: each attempt costs a full render); the
last attempt is delivered with its failures flagged. Pure functions: the bus flow acts on the answer;
the new seed of each attempt comes from :func:`reelforge_shared.specs.render_spec`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from reelforge_shared.events import QaReport


@dataclass(frozen=True, slots=True)
class QaDecision:
    action: Literal["deliver", "regenerate"]
    flagged: bool  # delivered although a gate failed (attempts used up)
    failed_gates: tuple[str, ...]
    attempt: int  # the attempt that was checked
    next_attempt: int | None  # set when action == "regenerate"
    reason: str


def decide(report: QaReport, attempt: int, max_attempts: int, gates: Iterable[str] | None = None) -> QaDecision:
    """Deliver a passing segment; regenerate a failing one while attempts remain; else deliver it flagged.

    ``gates`` limits which failed gates call for a new render (None: any gate). A gate that a new
    seed cannot change (say ``technical``, an encoder fault) can be left out by the caller.
    """
    if attempt < 1 or max_attempts < 1:
        raise ValueError(f"attempt and max_attempts start at 1, got attempt={attempt}, max_attempts={max_attempts}")
    failed = tuple(sorted(name for name, gate in report.gates.items() if not gate.passed))
    wanted = set(failed) if gates is None else set(failed) & set(gates)
    if not failed:
        return QaDecision("deliver", False, (), attempt, None, "every gate passed")
    if wanted and attempt < max_attempts:
        why = f"failed {', '.join(failed)}; attempt {attempt + 1} of {max_attempts}"
        return QaDecision("regenerate", False, failed, attempt, attempt + 1, why)
    why = "attempts used up" if wanted else "no failed gate calls for a new render"
    return QaDecision("deliver", True, failed, attempt, None, f"failed {', '.join(failed)}; {why}")
