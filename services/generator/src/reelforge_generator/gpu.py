"""What the GPU says about itself: memory, temperature, utilisation, read through NVML.

The guards and the metrics read a :class:`GpuSource`. On a GPU machine it is :class:`NvmlSource`
(pynvml, from the ``nvidia-ml-py`` package: the driver's own counters, which also see other
processes' memory, unlike ``torch.cuda``); on a CPU machine :class:`NoGpu`, which reads nothing so
every guard stands down. Tests without a GPU pass a stand-in with scripted readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

GIB = 2**30


@dataclass(frozen=True, slots=True)
class GpuReading:
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_c: float
    utilisation: float  # 0..1, share of the last sample period a kernel ran

    @property
    def memory_used_gb(self) -> float:
        return self.memory_used_bytes / GIB


class GpuSource(Protocol):
    """One GPU's live readings; ``None`` when there is no GPU to read."""

    name: str

    def read(self) -> GpuReading | None: ...


class NoGpu:
    """The CPU machine's source: nothing to read, so nothing to guard."""

    name = "cpu"

    def read(self) -> GpuReading | None:
        return None


class NvmlSource:
    """NVML readings of one CUDA device (``index`` as CUDA numbers it, assuming no CUDA_VISIBLE_DEVICES remap)."""

    def __init__(self, index: int = 0) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(self._handle)
        self.name = name.decode() if isinstance(name, bytes) else name

    def read(self) -> GpuReading:
        nvml, handle = self._nvml, self._handle
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return GpuReading(
            memory_used_bytes=int(memory.used),
            memory_total_bytes=int(memory.total),
            temperature_c=float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            utilisation=nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100,
        )


def source_for(device: str) -> GpuSource:
    """NVML for a CUDA device (its absence there is a broken install, so it raises), nothing for the CPU."""
    if not device.startswith("cuda"):
        return NoGpu()
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    return NvmlSource(index)
