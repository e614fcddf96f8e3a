"""One handler call's work, as the runner sees it: what it can stop when the call is abandoned.

A handler past its time limit is abandoned by the runner (:mod:`reelforge_shared.runner`). What can be
stopped is stopped: an async handler is cancelled, and the subprocesses a sync handler started through
:func:`run_subprocess` (ffmpeg, espeak-ng) are killed, so their thread returns. What cannot (a thread
wedged inside a GPU call) is left to the runner, which retires the worker.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from reelforge_shared.errors import TransientError


class WorkAbandoned(TransientError):
    """The runner abandoned this work (its time limit, a drain): its subprocess was killed."""


class Work:
    """The stoppable parts of one handler call: its subprocesses, and a flag long loops may check."""

    def __init__(self) -> None:
        self.abandoned = threading.Event()
        self._processes: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def adopt(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.add(process)
            late = self.abandoned.is_set()
        if late:
            process.kill()

    def release(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.discard(process)

    def abandon(self) -> int:
        """Stop what can be stopped; returns how many subprocesses were killed."""
        with self._lock:
            self.abandoned.set()
            processes = list(self._processes)
        for process in processes:
            process.kill()
        return len(processes)


_CURRENT: ContextVar[Work | None] = ContextVar("reelforge_work", default=None)


@contextmanager
def working(work: Work) -> Iterator[Work]:
    """Make ``work`` the current call's (the runner wraps each handler call in it)."""
    token = _CURRENT.set(work)
    try:
        yield work
    finally:
        _CURRENT.reset(token)


def current() -> Work | None:
    return _CURRENT.get()


def run_subprocess(
    args: Sequence[str], *, timeout: float | None = None, input: Any = None, text: bool = False
) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True)`` that the runner can stop: abandoned work kills the child.

    Raises ``subprocess.TimeoutExpired`` past ``timeout`` (the child killed) like ``subprocess.run``, and
    :class:`WorkAbandoned` when the runner abandoned the call meanwhile.
    """
    work = _CURRENT.get()
    stdin = subprocess.PIPE if input is not None else None
    with subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text) as process:  # noqa: S603
        if work is not None:
            work.adopt(process)
        try:
            out, err = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        finally:
            if work is not None:
                work.release(process)
    if work is not None and work.abandoned.is_set():
        raise WorkAbandoned(f"{args[0]} was killed: the work was abandoned")
    return subprocess.CompletedProcess(args, process.returncode, out, err)
