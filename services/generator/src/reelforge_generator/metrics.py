"""The generator's Prometheus metrics: GPU state read live on scrape, latencies, frames, degradations.

GPU gauges read the renderer's :class:`~reelforge_generator.gpu.GpuSource` at scrape time (no
polling thread); on a machine without a GPU they read nothing and report NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from reelforge_generator.gpu import GpuReading, GpuSource

FRAMES_RENDERED = Counter("reelforge_generator_frames_total", "Frames rendered", ["model"])
FRAME_SECONDS = Histogram(
    "reelforge_generator_frame_seconds",
    "Render time per frame (batch time / frames in it)",
    ["model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
SEGMENT_SECONDS = Histogram(
    "reelforge_generator_segment_seconds",
    "Render time of one segment's missing frames",
    ["model"],
    # targets: a 24-frame 1024x576 segment in 5 s and a 1080p one in 30 s on one H100; CPU demos take minutes
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
CAST_SHEETS_RENDERED = Counter(
    "reelforge_generator_cast_sheets_total", "Cast sheet images rendered (each once per owner, then reused)", ["model"]
)
DEGRADATIONS = Counter(
    "reelforge_generator_degradations_total", "What was given up to finish: smaller batch, offload, lower resolution", ["kind"]
)
SUPERSEDED = Counter(
    "reelforge_generator_superseded_total",
    "Requests of a continued shot dropped unrendered: a later attempt of it, from the newest last frame, is asked for",
)
THERMAL_PAUSE_SECONDS = Counter("reelforge_generator_thermal_pause_seconds_total", "Time paused for GPU temperature")
VRAM_USED = Gauge("reelforge_generator_vram_used_bytes", "Device memory in use (NVML, all processes)")
VRAM_TOTAL = Gauge("reelforge_generator_vram_total_bytes", "Device memory in total (NVML)")
VRAM_LIMIT = Gauge(
    "reelforge_generator_vram_limit_bytes", "REELFORGE_VRAM_LIMIT_GB: above it batches shrink (the VRAM alert's line)"
)
VRAM_PEAK = Gauge("reelforge_generator_vram_peak_bytes", "Peak memory PyTorch allocated during the last segment")
GPU_TEMPERATURE = Gauge("reelforge_generator_gpu_temperature_celsius", "GPU temperature (NVML)")
GPU_UTILISATION = Gauge("reelforge_generator_gpu_utilisation_ratio", "Share of time a kernel ran (NVML), 0..1")


def watch(source: GpuSource) -> None:
    """Point the live GPU gauges at ``source``; the last renderer set up is the one reported."""

    def reader(field: str) -> Callable[[], float]:
        def read() -> float:
            reading: GpuReading | None = source.read()
            return math.nan if reading is None else float(getattr(reading, field))

        return read

    VRAM_USED.set_function(reader("memory_used_bytes"))
    VRAM_TOTAL.set_function(reader("memory_total_bytes"))
    GPU_TEMPERATURE.set_function(reader("temperature_c"))
    GPU_UTILISATION.set_function(reader("utilisation"))
