"""GPU safety and metrics on a machine without a GPU.

NVML cannot run here, so a *stand-in NVML reading source* (:class:`StandInNvml`, same interface as
``NvmlSource``) plays the GPU's temperature and memory; out-of-memory errors are raised by a
*stand-in* forward pre-hook on the real tiny UNet, at the batch or size a test chooses. Everything
else is real: the tiny model, the renderer, the handler, S3, prometheus-client's registry.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image
from prometheus_client import REGISTRY

from reelforge_generator.gpu import GIB, GpuReading
from reelforge_generator.guards import ThermalGuard, VramGuard
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.errors import TransientError
from reelforge_shared.events import RenderSpec, SegmentRequested
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from support.factories import make_renderer

pytestmark = pytest.mark.gpu

SPEC = RenderSpec(
    prompt="a man in a blue shirt in a field", seed=1001, character_seeds=[1000], frames=4, fps=3, width=320, height=180
)


class StandInNvml:
    """Stand-in for NvmlSource: replays scripted readings (the last one repeats)."""

    name = "stand-in GPU"

    def __init__(self, *readings: tuple[float, float]) -> None:  # (temperature °C, memory used GiB)
        self.readings = [GpuReading(int(gb * GIB), 80 * GIB, temp, 0.9) for temp, gb in readings]
        self.reads = 0

    def read(self) -> GpuReading:
        self.reads += 1
        return self.readings[0] if len(self.readings) == 1 else self.readings.pop(0)


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _renderer(model_cache: Path, gpu: StandInNvml, clock: FakeClock | None = None, **settings: object) -> FrameRenderer:
    return make_renderer(model_cache, setup=True, steps=2, gpu=gpu, clock=clock or FakeClock(), **settings)


def test_thermal_guard_pauses_above_85_and_resumes_at_80_polling_every_10_s() -> None:
    clock = FakeClock()
    guard = ThermalGuard(StandInNvml((86, 1), (84, 1), (81, 1), (80, 1)), sleep=clock.sleep, clock=lambda: clock.now)
    assert guard.wait_until_cool() == 30.0
    assert clock.sleeps == [10.0, 10.0, 10.0]
    assert ThermalGuard(StandInNvml((85, 1)), sleep=clock.sleep).wait_until_cool() == 0.0  # 85 itself is not above 85


def test_renderer_waits_for_the_gpu_to_cool_before_a_batch(model_cache: Path) -> None:
    clock = FakeClock()
    renderer = _renderer(model_cache, StandInNvml((70, 1), (70, 1), (90, 1), (82, 1), (79, 1), (70, 1)), clock, batch_size=2)
    assert len(dict(renderer.render(SPEC, [0, 1, 2, 3]))) == 4
    assert clock.sleeps == [10.0, 10.0]  # hot before the second batch: two polls until 79 °C


def test_vram_guard_frees_the_cache_first_then_halves_the_batch_then_offloads() -> None:
    released, offloaded = [], []
    guard = VramGuard(
        StandInNvml((60, 41), (60, 39)), 40, release=lambda: released.append(1), offload=lambda: offloaded.append(1)
    )
    assert guard.batch_for(8) == 8
    assert released == [1]  # 41 GB was the allocator's cache: no pressure after freeing it
    guard = VramGuard(StandInNvml((60, 42.5)), 40, release=lambda: None, offload=lambda: offloaded.append(1))
    assert [guard.batch_for(b) for b in (8, 4, 2, 1, 1)] == [4, 2, 1, 1, 1]
    assert offloaded == [1]
    assert guard.notes[0] == "VRAM 42.5 GB above 40 GB: batch 8 -> 4"
    assert "offloaded" in guard.notes[-1]


@pytest.mark.slow  # renders a segment in small batches
def test_vram_pressure_gives_smaller_batches_and_says_so_in_the_event(
    model_cache: Path,
    store: ObjectStore,
    settings: CommonSettings,
) -> None:
    renderer = _renderer(model_cache, StandInNvml((60, 45)), batch_size=4, vram_limit_gb=40)
    [generated] = handle(SegmentRequested(job_id="j-vram", index=1, segment_id="a", spec=SPEC), _deps(renderer, store, settings))
    assert renderer.last_run.batches == [2, 1, 1]
    assert generated.degraded.startswith("VRAM 45.0 GB above 40 GB: batch 4 -> 2; VRAM 45.0 GB above 40 GB: batch 2 -> 1")
    assert len(store.list_keys(settings.work_bucket, Keys.frames("j-vram", 1))) == 4


def _deps(renderer: FrameRenderer, store: ObjectStore, settings: CommonSettings) -> GeneratorDeps:
    return GeneratorDeps(store=store, bucket=settings.work_bucket, renderer=renderer)


def _out_of_memory_above(renderer: FrameRenderer, batch: int | None = None, width: int | None = None) -> list[tuple[int, int]]:
    """Stand-in for a full GPU: the UNet raises CUDA's OOM error above a batch (CFG doubles it) or a latent width."""
    seen: list[tuple[int, int]] = []

    def hook(module: torch.nn.Module, args: tuple) -> None:
        sample = args[0]
        seen.append((sample.shape[0] // 2, sample.shape[-1]))
        if (batch is not None and sample.shape[0] > 2 * batch) or (width is not None and sample.shape[-1] > width):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (stand-in)")

    renderer.pipe.unet.register_forward_pre_hook(hook)
    return seen


def test_out_of_memory_retries_at_smaller_batches(model_cache: Path, store: ObjectStore, settings: CommonSettings) -> None:
    renderer = _renderer(model_cache, StandInNvml((60, 10)), batch_size=4)
    seen = _out_of_memory_above(renderer, batch=1)
    [generated] = handle(SegmentRequested(job_id="j-oom", index=1, segment_id="a", spec=SPEC), _deps(renderer, store, settings))
    assert [b for b, _ in seen][:3] == [4, 2, 1]
    assert {b for b, _ in seen[2:]} == {1}
    assert generated.degraded == "out of memory at batch 4: batch 2; out of memory at batch 2: batch 1"
    assert len(store.list_keys(settings.work_bucket, Keys.frames("j-oom", 1))) == 4


@pytest.mark.slow  # renders a segment at two resolutions
def test_out_of_memory_at_batch_1_lowers_the_resolution_of_the_whole_segment(
    model_cache: Path,
    store: ObjectStore,
    settings: CommonSettings,
) -> None:
    deps = _deps(_renderer(model_cache, StandInNvml((60, 10)), batch_size=2), store, settings)
    event = SegmentRequested(job_id="j-oom-size", index=1, segment_id="a", spec=SPEC)
    handle(event, deps)  # a first delivery stored four full-size frames; two are lost
    for i in (2, 3):
        store.remove(settings.work_bucket, Keys.frame("j-oom-size", 1, i))
    _out_of_memory_above(deps.renderer, width=24)  # 128 px wide = 32 latent columns: too much now; 96 px = 24 fits
    [generated] = handle(event, deps)
    sizes = {
        Image.open(io.BytesIO(store.get_bytes(settings.work_bucket, key))).size
        for key in store.list_keys(settings.work_bucket, Keys.frames("j-oom-size", 1))
    }
    assert sizes == {(96, 56)}  # every frame again at the lower size, not only the two missing
    lowered = "out of memory at batch 1, 128x72: resolution lowered to 96x56"
    assert generated.degraded == f"out of memory at batch 2: batch 1; {lowered}"
    assert store.get_json(settings.work_bucket, Keys.render_state("j-oom-size", 1))["width"] == 96
    store.remove(settings.work_bucket, Keys.frame("j-oom-size", 1, 0))
    [again] = handle(event, deps)  # redelivered: the rest at the recorded size, the degradation still reported
    assert deps.renderer.last_run.plan.size == (96, 56)
    assert lowered in again.degraded


def test_out_of_memory_at_the_smallest_plan_is_transient(model_cache: Path, store: ObjectStore, settings: CommonSettings) -> None:
    renderer = _renderer(model_cache, StandInNvml((60, 10)), batch_size=1)
    _out_of_memory_above(renderer, width=0)
    with pytest.raises(TransientError, match="out of memory at batch 1 and 64x32"):
        handle(SegmentRequested(job_id="j-oom-all", index=1, segment_id="a", spec=SPEC), _deps(renderer, store, settings))


def test_gpu_metrics_read_the_nvml_source_on_scrape(model_cache: Path) -> None:
    _renderer(model_cache, StandInNvml((71, 12)))
    assert REGISTRY.get_sample_value("reelforge_generator_gpu_temperature_celsius") == 71
    assert REGISTRY.get_sample_value("reelforge_generator_vram_used_bytes") == 12 * GIB
    assert REGISTRY.get_sample_value("reelforge_generator_vram_total_bytes") == 80 * GIB
    assert REGISTRY.get_sample_value("reelforge_generator_gpu_utilisation_ratio") == 0.9


def test_render_metrics_count_frames_latencies_and_degradations(model_cache: Path) -> None:
    renderer = _renderer(model_cache, StandInNvml((60, 41)), batch_size=2)
    model = {"model": "reelforge/tiny-sd"}

    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or model) or 0.0

    def samples() -> list[float]:
        names = ("frames_total", "frame_seconds_count", "segment_seconds_count")
        return [
            *(sample(f"reelforge_generator_{name}") for name in names),
            sample("reelforge_generator_degradations_total", {"kind": "batch"}),
        ]

    before = samples()
    list(renderer.render(SPEC, [0, 1, 2, 3]))
    assert [a - b for a, b in zip(samples(), before, strict=True)] == [4, 4, 1, 1]
