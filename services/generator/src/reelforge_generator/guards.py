"""GPU safety between batches: a thermal pause and a VRAM ceiling (the GPU brief: pause above 85 °C, 40 GB).

Both run before every UNet batch, read a :class:`~reelforge_generator.gpu.GpuSource` and take
their clock and sleep as arguments, so tests drive them with scripted readings and no waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from reelforge_generator.gpu import GpuSource
from reelforge_generator.metrics import DEGRADATIONS, THERMAL_PAUSE_SECONDS

log = structlog.get_logger("reelforge.generator")


@dataclass(slots=True)
class ThermalGuard:
    """Above ``pause_above_c`` wait, polling every ``poll_s``, until at or below ``resume_at_c``."""

    source: GpuSource
    pause_above_c: float = 85.0
    resume_at_c: float = 80.0  # 5 °C of hysteresis: resuming at 85 would pause again within a batch
    poll_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def wait_until_cool(self) -> float:
        """Seconds spent paused (0 when cool enough or when there is no GPU)."""
        reading = self.source.read()
        if reading is None or reading.temperature_c <= self.pause_above_c:
            return 0.0
        began = self.clock()
        log.warning("gpu.thermal_pause", temperature_c=reading.temperature_c, resume_at_c=self.resume_at_c)
        while reading is not None and reading.temperature_c > self.resume_at_c:
            self.sleep(self.poll_s)
            reading = self.source.read()
        paused = self.clock() - began
        THERMAL_PAUSE_SECONDS.inc(paused)
        log.info("gpu.thermal_resume", temperature_c=reading.temperature_c if reading else None, paused_s=round(paused, 1))
        return paused


@dataclass(slots=True)
class VramGuard:
    """Keeps the device under ``limit_gb``: first smaller batches, then model offload to host memory.

    Neither changes the images. ``release`` frees the allocator's cache (what NVML counts as used
    but PyTorch holds only for reuse) before a reading counts as pressure; ``offload`` moves the
    model's idle parts to host memory. Both are the renderer's, passed in.
    """

    source: GpuSource
    limit_gb: float
    release: Callable[[], None]
    offload: Callable[[], None]
    offloaded: bool = False
    notes: list[str] = field(default_factory=list)

    def over_limit(self) -> float | None:
        reading = self.source.read()
        if reading is None or reading.memory_used_gb <= self.limit_gb:
            return None
        self.release()
        reading = self.source.read()
        return reading.memory_used_gb if reading is not None and reading.memory_used_gb > self.limit_gb else None

    def batch_for(self, batch: int) -> int:
        """The batch to run next: ``batch``, or half of it while the device is above the limit."""
        used = self.over_limit()
        if used is None:
            return batch
        if batch > 1:
            smaller = batch // 2
            self._note("batch", f"VRAM {used:.1f} GB above {self.limit_gb:g} GB: batch {batch} -> {smaller}")
            return smaller
        if not self.offloaded:
            self.offload()
            self.offloaded = True
            self._note("offload", f"VRAM {used:.1f} GB above {self.limit_gb:g} GB at batch 1: model offloaded to host memory")
        return batch

    def _note(self, kind: str, text: str) -> None:
        DEGRADATIONS.labels(kind).inc()
        log.warning("gpu.vram_guard", action=kind, detail=text)
        self.notes.append(text)
