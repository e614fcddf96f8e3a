"""Encoder choice (NVENC or software), quality presets, HEVC, 1080p scaling: real ffmpeg, read back with PyAV.

NVENC itself cannot run here (no GPU): the choice is a pure function of what ffmpeg lists and what
NVML reports, tested with both answers; only the "no NVML" answer is this machine's real one.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.codecs import QUALITY, build_codec, choose_encoder, ffmpeg_encoders, nvenc_gpu
from reelforge_encoder.ffmpeg import encode_frames, ffmpeg_exe
from reelforge_shared.media import probe

EXE = ffmpeg_exe()
WITH_NVENC = frozenset({"libx264", "libx265", "h264_nvenc", "hevc_nvenc", "aac"})
WITHOUT_NVENC = frozenset({"libx264", "libx265", "aac"})


def _noisy_frames(folder: Path, count: int = 4) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


@pytest.mark.parametrize(
    ("requested", "encoders", "gpu", "chosen"),
    [
        ("h264", WITH_NVENC, True, "h264_nvenc"),  # an L40S with an NVENC-enabled ffmpeg
        ("h264", WITH_NVENC, False, "libx264"),  # an H100: no NVENC engine
        ("h264", WITHOUT_NVENC, True, "libx264"),  # a GPU, but an ffmpeg built without NVENC
        ("h264", WITHOUT_NVENC, False, "libx264"),
        ("hevc", WITH_NVENC, True, "hevc_nvenc"),
        ("hevc", WITH_NVENC, False, "libx265"),
        ("libx264", WITH_NVENC, True, "libx264"),  # a named encoder is taken as given
    ],
)
def test_choose_encoder_takes_nvenc_only_when_ffmpeg_and_gpu_both_have_it(
    requested: str, encoders: frozenset[str], gpu: bool, chosen: str
) -> None:
    assert choose_encoder(requested, encoders, gpu) == chosen


def test_choose_encoder_refuses_an_encoder_this_ffmpeg_lacks() -> None:
    with pytest.raises(ValueError, match="no encoder 'h264_nvenc'"):
        choose_encoder("h264_nvenc", WITHOUT_NVENC, True)


def test_this_ffmpeg_lists_software_and_nvenc_encoders_and_this_machine_has_no_nvenc_gpu() -> None:
    encoders = ffmpeg_encoders(EXE)
    assert {"libx264", "libx265", "h264_nvenc", "hevc_nvenc", "aac"} <= encoders
    assert nvenc_gpu() is False  # no NVML library here: the real answer on a machine without an NVIDIA driver
    assert build_codec(EXE, "h264", "high").vcodec == "libx264"
    assert build_codec(EXE, "h264", "high", nvenc=True).vcodec == "h264_nvenc"  # stand-in for an L40S's NVML answer


def test_quality_presets_set_crf_and_preset_and_hevc_gets_its_equivalent_crf() -> None:
    assert [(QUALITY[q].crf, QUALITY[q].preset) for q in ("low", "medium", "high")] == [
        (28, "veryfast"),
        (23, "medium"),
        (18, "slow"),
    ]
    assert (build_codec(EXE, "hevc", "medium").vcodec, build_codec(EXE, "hevc", "medium").crf) == ("libx265", 28)
    assert build_codec(EXE, "h264", "low", crf=20, preset="fast").crf == 20
    nvenc = build_codec(EXE, "h264", "high", nvenc=True).output_args(24)
    assert (nvenc["cq"], nvenc["preset"], nvenc["rc"]) == (18, "p6", "vbr")


def test_higher_quality_preset_spends_more_bits(tmp_path: Path) -> None:
    frames = _noisy_frames(tmp_path / "f")
    sizes = {
        q: encode_frames(frames, 3, 320, 180, tmp_path / f"{q}.mp4", build_codec(EXE, "h264", q)).stat().st_size for q in QUALITY
    }
    assert sizes["low"] < sizes["medium"] < sizes["high"]


def test_hevc_option_gives_a_faststart_hevc_segment(tmp_path: Path) -> None:
    video = encode_frames(_noisy_frames(tmp_path / "f"), 3, 320, 180, tmp_path / "s.mp4", build_codec(EXE, "hevc", "low"))
    info = probe(video)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.frame_count) == ("hevc", "yuv420p", 320, 180, 4)
    data = video.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert b"hvc1" in data[:4096]


def test_segment_is_upscaled_to_1080p_and_tagged_bt709(tmp_path: Path) -> None:
    video = encode_frames(_noisy_frames(tmp_path / "f", 2), 3, 1920, 1080, tmp_path / "s.mp4", build_codec(EXE, "h264", "low"))
    info = probe(video)
    assert (info.width, info.height, info.codec, info.pix_fmt, info.frame_count) == (1920, 1080, "h264", "yuv420p", 2)
    with av.open(str(video)) as container:
        assert container.streams.video[0].codec_context.colorspace == 1  # BT.709, what HD players assume
