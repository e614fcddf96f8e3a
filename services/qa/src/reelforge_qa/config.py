"""QA settings (prefix ``REELFORGE_``): one threshold per gate, the film-level checks, regeneration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from reelforge_shared.settings import CommonSettings

if TYPE_CHECKING:
    from reelforge_qa.film_checks import FilmThresholds
    from reelforge_qa.scores import Thresholds


class QaSettings(CommonSettings):
    sample_frames: int = Field(24, ge=1, description="frames scored per segment (evenly spaced)")
    sharpness_threshold: float = Field(0.2, ge=0, le=1, description="blur gate: minimum sharpness score")
    exposure_threshold: float = Field(0.5, ge=0, le=1, description="exposure gate: minimum score")
    noise_threshold: float = Field(0.5, ge=0, le=1, description="noise gate: minimum score (1 = clean)")
    blockiness_threshold: float = Field(
        0.5, ge=0, le=1, description="compression-block gate: minimum score (0.5: grid steps 1.5x the texture)"
    )
    flicker_threshold: float = Field(
        0.5, ge=0, le=1, description="flicker gate: minimum score (0.5: a frame 12 luma levels off its neighbours)"
    )
    smoothness_threshold: float = Field(
        0.5, ge=0, le=1, description="temporal smoothness gate: minimum score (0.5: half the contrast unexplained by motion)"
    )
    continuity_threshold: float = Field(
        0.85,
        ge=0,
        le=1,
        description="film checks: minimum continuity score per character, location, light and join (seed 001: > 0.85)",
    )
    qa_film_sample_frames: int = Field(8, ge=1, description="colour frames per segment for the film-level continuity descriptors")
    qa_embedding_model: str | None = Field(
        None,
        description="local folder of a transformers CLIPModel (save_pretrained): image embeddings join the continuity checks; "
        "unset: classical descriptors only",
    )
    qa_max_attempts: int = Field(
        2,
        ge=1,
        le=10,
        description="renders per segment: a segment failing a gate is rendered again with a new seed up to this many, "
        "then delivered flagged",
    )

    def thresholds(self) -> Thresholds:
        from reelforge_qa.scores import Thresholds  # here, not at the top: config stays import-light (no cv2, av)

        return Thresholds(
            sharpness=self.sharpness_threshold,
            exposure=self.exposure_threshold,
            noise=self.noise_threshold,
            blockiness=self.blockiness_threshold,
            flicker=self.flicker_threshold,
            smoothness=self.smoothness_threshold,
        )

    def film_thresholds(self) -> FilmThresholds:
        from reelforge_qa.film_checks import FilmThresholds

        return FilmThresholds(continuity=self.continuity_threshold, sample_frames=self.qa_film_sample_frames)
