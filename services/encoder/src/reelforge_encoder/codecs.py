"""Which video encoder to use, and how hard it works (quality presets).

The choice between NVENC and software x264/x265 is a pure function of two facts, so it can be
tested without a GPU: the encoders the ffmpeg in use lists, and whether NVML reports a GPU with
an NVENC engine (an L40S has three; an A100, H100 or H200 has none, and NVML then refuses the
encoder-capacity query). Both facts are read once, when the service is built.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import subprocess
from dataclasses import dataclass
from typing import Literal

from reelforge_encoder.ffmpeg import Codec

Family = Literal["h264", "hevc"]
Quality = Literal["low", "medium", "high"]

SOFTWARE: dict[Family, str] = {"h264": "libx264", "hevc": "libx265"}
NVENC: dict[Family, str] = {"h264": "h264_nvenc", "hevc": "hevc_nvenc"}


@dataclass(frozen=True, slots=True)
class QualityPreset:
    crf: int  # x264 CRF; x265 and NVENC get their equivalents in Codec.output_args
    preset: str  # x264/x265 speed preset; NVENC maps it onto p1..p7


# The video API guide's VIDEO_QUALITY_PRESET (low, medium, high). High is the GPU brief's recipe (CRF 18, preset slow);
# medium is x264's own default (CRF 23); low trades about half the size for visible softness (CRF 28).
QUALITY: dict[Quality, QualityPreset] = {
    "low": QualityPreset(crf=28, preset="veryfast"),
    "medium": QualityPreset(crf=23, preset="medium"),
    "high": QualityPreset(crf=18, preset="slow"),
}


def choose_encoder(requested: str, encoders: frozenset[str], nvenc_gpu: bool) -> str:
    """The ffmpeg encoder for ``requested``: a family (``h264``, ``hevc``) or an encoder name.

    A family takes NVENC when this ffmpeg has it and the GPU has an NVENC engine, the software
    encoder otherwise. An encoder name is taken as given; either way it must be one this ffmpeg has.
    """
    if requested in SOFTWARE:
        family: Family = requested  # narrowed by the membership test
        chosen = NVENC[family] if nvenc_gpu and NVENC[family] in encoders else SOFTWARE[family]
    else:
        chosen = requested
    if chosen not in encoders:
        raise ValueError(f"video codec {requested!r}: this ffmpeg has no encoder {chosen!r}")
    return chosen


@functools.cache
def ffmpeg_encoders(exe: str) -> frozenset[str]:
    """Names of the video and audio encoders ``exe`` was built with (``ffmpeg -encoders``)."""
    cmd = [exe, "-hide_banner", "-encoders"]  # no input: nothing to whitelist; a minute is plenty for a listing
    listing = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout  # noqa: S603 - our ffmpeg, no shell
    return frozenset(m.group(1) for m in re.finditer(r"^ [VAS][A-Z.]{5} (\S+)", listing, re.MULTILINE))


def nvenc_gpu() -> bool:
    """True when NVML reports a GPU that can encode H.264 with NVENC (no NVML, no GPU: False)."""
    try:
        import pynvml
    except ImportError:
        return False
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver library: no NVIDIA GPU here
        return False
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            try:
                if pynvml.nvmlDeviceGetEncoderCapacity(handle, pynvml.NVML_ENCODER_QUERY_H264) > 0:
                    return True
            except pynvml.NVMLError:  # NOT_SUPPORTED: a compute GPU without NVENC (A100, H100)
                continue
        return False
    finally:
        pynvml.nvmlShutdown()


X265_CRF_OFFSET = 5  # x265's CRF 28 looks like x264's CRF 23 (x265 documentation), so a preset's CRF moves up by 5 for HEVC


def build_codec(
    exe: str, requested: str, quality: Quality, crf: int | None = None, preset: str | None = None, nvenc: bool | None = None
) -> Codec:
    """The Codec for this machine: encoder chosen from this ffmpeg and this GPU, CRF and preset from the quality preset.

    ``crf`` and ``preset`` override the preset's (``crf`` on the chosen encoder's own scale); ``nvenc``
    overrides the NVML probe.
    """
    vcodec = choose_encoder(requested, ffmpeg_encoders(exe), nvenc_gpu() if nvenc is None else nvenc)
    chosen = QUALITY[quality]
    if crf is None:
        crf = chosen.crf + (X265_CRF_OFFSET if vcodec == "libx265" else 0)
    return Codec(exe, vcodec, crf, preset or chosen.preset)


def codec_for_quality(codec: Codec, quality: Quality) -> Codec:
    """``codec`` with another quality preset's CRF and preset: a job that asks for its own quality."""
    chosen = QUALITY[quality]
    crf = chosen.crf + (X265_CRF_OFFSET if codec.vcodec == "libx265" else 0)
    return dataclasses.replace(codec, crf=crf, preset=chosen.preset)
