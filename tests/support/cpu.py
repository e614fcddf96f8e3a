"""CPU time, which tests count where they bound work: wall-clock time stretches with the machine's other work (a test
that passed alone failed under load, or beside another pytest worker), a thread's CPU time does not.

A thread cannot run more CPU time than the time that passes, so work that stops at a deadline runs at most that long
on the CPU, however busy the machine is; work that goes on runs for as long as the work takes. A test compares that
with a reference it measures itself, on the same machine, at the same moment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(work: Callable[[], object]) -> float:
    """The CPU seconds ``work()`` runs in this thread."""
    started = time.thread_time()
    work()
    return time.thread_time() - started


def thread_cpu_s(native_id: int) -> float | None:
    """The CPU seconds the thread ``native_id`` (``threading.Thread.native_id``, this process) has run, or None once
    it has ended (Linux's /proc, to 10 ms; ``time.pthread_getcpuclockid`` needs a thread that still exists)."""
    try:
        stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    except OSError:  # gone (ENOENT, or ESRCH while it is being reaped)
        return None
    utime, stime = stat.rsplit(")", 1)[1].split()[11:13]  # fields 14 and 15; the name before ")" may hold spaces
    return (int(utime) + int(stime)) / _TICKS_PER_S
