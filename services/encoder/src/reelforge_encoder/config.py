"""Encoder settings (prefix ``REELFORGE_``)."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from reelforge_shared.settings import CommonSettings


class EncoderSettings(CommonSettings):
    ffmpeg: str | None = Field(None, description="ffmpeg binary (default: ffmpeg on PATH, else the imageio-ffmpeg wheel's)")
    ffmpeg_timeout_s: float = Field(
        1800.0, gt=0, description="time limit of one ffmpeg run; past it ffmpeg is killed and the step fails (permanent)"
    )
    video_codec: Literal["h264", "hevc", "libx264", "libx265", "h264_nvenc", "hevc_nvenc"] = Field(
        "h264",
        description="h264 or hevc: NVENC when ffmpeg has it and the GPU has an NVENC engine, else libx264/libx265; "
        "an encoder name forces it",
    )
    video_quality: Literal["low", "medium", "high"] = Field(
        "high",
        description="quality preset (video API guide): low CRF 28 veryfast, medium CRF 23 medium, high CRF 18 slow (HEVC +5)",
    )
    crf: int | None = Field(
        None, ge=0, le=51, description="overrides the quality preset's CRF (NVENC: cq), on the encoder's own scale"
    )
    preset: str | None = Field(
        None,
        validation_alias="REELFORGE_ENCODER_PRESET",
        description="overrides the quality preset's x264/x265 preset (NVENC: mapped onto p1..p7)",
    )
    film_fps: float | None = Field(
        None, gt=0, le=120, description="frame rate of the final film (default: output.fps, else the highest segment fps)"
    )
    piece_cache_mb: int = Field(
        2048,
        ge=0,
        le=1_000_000,
        description="disk kept for the film pieces this encoder stored, so its film step need not fetch them from S3 "
        "again (least recently used out first; 0: off)",
    )
    piece_cache_dir: Path | None = Field(
        None,
        description="a folder for those pieces that outlives the process: the next encoder over it takes them up "
        "(`reelforge run` keeps them in OUT/.reelforge/state/pieces, so an edit's film step does not download them); "
        "unset: a temporary folder, removed at exit. One encoder per folder",
    )
    espeak: str | None = Field(
        None, description="espeak-ng binary for narration text (default: espeak-ng on PATH; none: narration text is refused)"
    )
