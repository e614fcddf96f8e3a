"""Regenerate or deliver: a pure decision from a QA report and the attempt number."""

from __future__ import annotations

import pytest

from reelforge_qa.config import QaSettings
from reelforge_qa.gates import GATES, GATES_BY_NAME, RERENDER_GATES, TECHNICAL
from reelforge_qa.regenerate import decide
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


def test_each_row_of_the_gate_registry_is_a_setting_with_the_rows_default(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = QaSettings().thresholds()
    for gate in GATES:
        assert defaults[gate.name] == gate.threshold, gate.name
    monkeypatch.setenv("REELFORGE_FLICKER_THRESHOLD", "0.7")
    assert QaSettings().thresholds()["flicker"] == 0.7
    assert QaSettings.model_fields["flicker_threshold"].description == GATES_BY_NAME["flicker"].doc


def test_only_gates_a_new_seed_can_fix_call_for_a_re_render() -> None:
    assert TECHNICAL not in RERENDER_GATES
    assert decide(_report(technical=True), 1, 2, gates=RERENDER_GATES).action == "deliver"
    assert decide(_report(sharpness=True), 1, 2, gates=RERENDER_GATES).action == "regenerate"


def test_max_attempts_setting_defaults_to_two(monkeypatch: pytest.MonkeyPatch) -> None:
    assert QaSettings().qa_max_attempts == 2
    monkeypatch.setenv("REELFORGE_QA_MAX_ATTEMPTS", "3")
    assert QaSettings().qa_max_attempts == 3
