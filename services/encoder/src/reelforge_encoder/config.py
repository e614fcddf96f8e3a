from typing import Literal

from pydantic import Field

from reelforge_shared.settings import CommonSettings


class EncoderSettings(CommonSettings):
    ffmpeg: str | None = Field(None, description="ffmpeg binary (default: ffmpeg on PATH, else the imageio-ffmpeg wheel's)")
    video_codec: Literal["libx264", "libx265"] = Field("libx264", description="H.264 (default) or HEVC")
    crf: int = Field(18, ge=0, le=51, description="constant rate factor (seed 001: 18)")
    preset: str = Field("veryfast", description="x264/x265 preset")
    film_fps: float | None = Field(None, gt=0, le=120, description="frame rate of the final film (default: the highest segment fps)")
