from pydantic import Field

from reelforge_shared.settings import CommonSettings


class QaSettings(CommonSettings):
    sample_frames: int = Field(24, ge=1, description="frames scored per segment (evenly spaced)")
    sharpness_threshold: float = Field(0.2, ge=0, le=1, description="blur gate: minimum sharpness score")
    exposure_threshold: float = Field(0.5, ge=0, le=1, description="exposure gate: minimum score")
    noise_threshold: float = Field(0.5, ge=0, le=1, description="noise gate: minimum score (1 = clean)")
