"""YAML read in one pass that stops at its deadline and refuses anchors and aliases (reelforge_shared.bounded_yaml)."""

from __future__ import annotations

import gc
import time

import pytest
import yaml

from reelforge_shared.bounded_yaml import AnchorRefused, DeadlinePassed, load_bounded
from support.cpu import cpu_s

SLOW_YAML = "segments: [" + ",".join(["{a: 1}"] * 36_000) + "]"  # 252 kB: about a second of CPU to read whole
TENTH = "segments: [" + ",".join(["{a: 1}"] * 3_600) + "]"  # a tenth of it


def test_load_bounded_reads_what_the_safe_loader_reads() -> None:
    text = "title: x\nsegments:\n  - {id: a, prompt: walks, frames: 24, fps: 3.5}\n  - id: b\n    prompt: 'on: a colon'\nn: ~\n"
    assert load_bounded(text) == yaml.safe_load(text)
    assert load_bounded("") is None
    with pytest.raises(yaml.YAMLError):
        load_bounded("a: [1, 2\n")
    with pytest.raises(yaml.YAMLError):
        load_bounded("a: 1\n---\nb: 2\n")  # one document only


def test_load_bounded_stops_at_its_deadline() -> None:
    """Counted in CPU time (support.cpu): stopped at its deadline, the read runs at most the 50 ms to it and one step;
    read on, it would run the whole of SLOW_YAML, more than ten times what a tenth of it costs here."""
    tenth = cpu_s(lambda: load_bounded(TENTH))
    gc.collect()
    gc.disable()  # as the gateway reads (submit.py): a full collection of a test worker's heap (torch loaded) ran inside
    try:  # the read once and put 0.2 s of CPU on it
        started = time.thread_time()
        with pytest.raises(DeadlinePassed):
            load_bounded(SLOW_YAML, deadline=time.monotonic() + 0.05)
        spent = time.thread_time() - started
    finally:
        gc.enable()
    assert spent < 0.05 + 3 * tenth, f"{spent:.3f} s of CPU; a tenth of the YAML read whole: {tenth:.3f} s"


@pytest.mark.parametrize(
    ("text", "kind", "line"),
    [
        ("a: &x 1\nb: 2\n", "anchor", 1),
        ("title: x\nsegments:\n  - &s {id: a}\n", "anchor", 3),
        ("a: 1\nb: *x\n", "alias", 2),
        ("a: !!str &x 1\n", "anchor", 1),
    ],
)
def test_load_bounded_refuses_anchors_and_aliases_naming_the_line(text: str, kind: str, line: int) -> None:
    with pytest.raises(AnchorRefused) as refused:
        load_bounded(text)
    assert (refused.value.kind, refused.value.line) == (kind, line)
