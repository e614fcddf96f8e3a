"""Regenerate or deliver: a pure decision from a QA report and the attempt number."""

from __future__ import annotations

import pytest

from reelforge_qa.config import QaSettings
from reelforge_qa.regenerate import decide, gate_failure_counts
from reelforge_shared.events import QaGate, QaReport


def _report(**failed: bool) -> QaReport:
    gates = {name: QaGate(score=0.1 if bad else 0.9, threshold=0.5, passed=not bad) for name, bad in failed.items()}
    return QaReport(passed=not any(failed.values()), gates=gates)


def test_decide_delivers_a_passing_segment() -> None:
    decision = decide(_report(technical=False, sharpness=False), attempt=1, max_attempts=2)
    assert (decision.action, decision.flagged, decision.next_attempt) == ("deliver", False, None)


def test_decide_regenerates_until_attempts_are_used_up_then_flags() -> None:
    failing = _report(technical=False, sharpness=True)
    first = decide(failing, attempt=1, max_attempts=2)
    assert (first.action, first.next_attempt, first.failed_gates) == ("regenerate", 2, ("sharpness",))
    last = decide(failing, attempt=2, max_attempts=2)
    assert (last.action, last.flagged, last.next_attempt) == ("deliver", True, None)
    assert "attempts used up" in last.reason


def test_decide_leaves_gates_a_new_seed_cannot_fix_to_the_caller() -> None:
    encoder_fault = _report(technical=True, sharpness=False)
    decision = decide(encoder_fault, attempt=1, max_attempts=3, gates={"sharpness", "exposure"})
    assert (decision.action, decision.flagged, decision.failed_gates) == ("deliver", True, ("technical",))


def test_decide_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        decide(_report(), attempt=0, max_attempts=2)


def test_attempt_seeds_are_new_and_reproducible() -> None:
    from reelforge_shared.specs import render_spec
    from reelforge_shared.storyboard import parse_storyboard

    board = parse_storyboard(
        {
            "characters": {"hero": {"description": "a man", "seed": 1000}},
            "segments": [{"id": "a", "prompt": "p", "characters": ["hero"]}],
        }
    )
    assert render_spec(board, 1).seed == 1001
    assert render_spec(board, 1, attempt=2).seed == render_spec(board, 1, attempt=2).seed != 1001
    assert render_spec(board, 1, attempt=2).prompt == render_spec(board, 1).prompt


def test_gate_failure_counts_over_attempts() -> None:
    reports = [_report(sharpness=True), _report(sharpness=True, flicker=True), _report(sharpness=False)]
    assert gate_failure_counts(reports) == {"flicker": 1, "sharpness": 2}


def test_max_attempts_setting_defaults_to_two(monkeypatch: pytest.MonkeyPatch) -> None:
    assert QaSettings().qa_max_attempts == 2
    monkeypatch.setenv("REELFORGE_QA_MAX_ATTEMPTS", "3")
    assert QaSettings().qa_max_attempts == 3
