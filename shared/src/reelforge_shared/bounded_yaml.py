"""YAML read in one pass that stops: no anchors or aliases, and a deadline checked at every event and node.

libyaml (when installed) turns the text into events; the composer and the safe constructor of PyYAML build the
data from them, and this loader checks, at each event it takes and each object it builds, that the deadline has not
passed (:class:`DeadlinePassed`) and that no node has an anchor or is an alias (:class:`AnchorRefused`, with its
line: a 483-byte YAML of nested aliases expands to gigabytes). So a read that runs out of time ends there, in the
thread that runs it, instead of going on after its caller has answered; a YAML body is bounded in size by the
caller (``REELFORGE_MAX_YAML_BYTES``), so the stretch between two checks is short.

A read runs in a thread beside the gateway's event loop; every ``YIELD_EVERY`` steps it lets a waiting thread take
the GIL (``time.sleep(0)``), so the loop waits well under a millisecond for it instead of CPython's 5 ms switch
interval, each time it wakes up during the read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, Event
from yaml.nodes import Node
from yaml.resolver import Resolver

YIELD_EVERY = 256  # events and objects between two GIL hand-overs: well under a millisecond of work
_EVENTS_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser where installed: several times faster


class DeadlinePassed(Exception):
    """The deadline passed before the YAML was read; the read stopped there."""


class AnchorRefused(Exception):
    """An anchor (``&name``) or alias (``*name``): refused, with the line it is on (1-based)."""

    def __init__(self, kind: str, line: int) -> None:
        super().__init__(f"line {line}: YAML {kind}s (&name, *name) are not accepted; write the value out")
        self.kind, self.line = kind, line


class _BoundedLoader(Composer, SafeConstructor, Resolver):
    """PyYAML's composer and safe constructor over an event stream, checking the deadline and refusing anchors."""

    def __init__(self, events: Iterator[Event], deadline: float | None) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._events, self._next, self._deadline, self._steps = events, None, deadline, 0

    def _in_time(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise DeadlinePassed
        self._steps += 1
        if self._steps % YIELD_EVERY == 0:  # hand the GIL to a waiting thread (the event loop) now, not in 5 ms
            time.sleep(0)

    # The parser's face the composer reads (one event looked ahead).
    def peek_event(self) -> Event | None:
        if self._next is None:
            self._in_time()
            self._next = next(self._events, None)
        return self._next

    def check_event(self, *choices: type[Event]) -> bool:
        event = self.peek_event()
        return event is not None and (not choices or isinstance(event, choices))

    def get_event(self) -> Event | None:
        event, self._next = self.peek_event(), None
        return event

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None):
            assert event is not None  # noqa: S101 (an alias or anchored event)
            raise AnchorRefused("alias" if isinstance(event, AliasEvent) else "anchor", event.start_mark.line + 1)
        return super().compose_node(parent, index)

    def release(self) -> None:
        """Drop what a read that stopped half-way holds (its generators hold the loader: a cycle the collector
        would have to find), so that it all goes by reference counting at once."""
        self.state_generators.clear()
        self.constructed_objects.clear()
        self.recursive_objects.clear()
        self.anchors.clear()
        self._events, self._next = iter(()), None

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        self._in_time()
        return super().construct_object(node, deep)


def load_bounded(text: str, deadline: float | None = None) -> Any:
    """The data of one YAML document, read by the safe loader without anchors or aliases, by ``deadline`` (monotonic).

    Raises :class:`AnchorRefused`, :class:`DeadlinePassed`, ``yaml.YAMLError`` or ``RecursionError`` (nested too deep).
    """
    loader = _BoundedLoader(yaml.parse(text, Loader=_EVENTS_LOADER), deadline)
    try:
        return loader.get_single_data()
    finally:
        loader.release()
