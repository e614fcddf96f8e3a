"""QA settings (prefix ``REELFORGE_``): one threshold per gate of the registry, the film-level checks, re-renders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, create_model

from reelforge_qa.gates import GATES, Thresholds
from reelforge_shared.settings import CommonSettings

if TYPE_CHECKING:
    from reelforge_qa.film_checks import FilmThresholds

    _GateSettings = CommonSettings
else:  # one setting per row of the gate registry: REELFORGE_<NAME>_THRESHOLD, its default the row's
    _GateSettings = create_model(
        "_GateSettings",
        __base__=CommonSettings,
        **{g.setting: (float, Field(g.threshold, ge=0, le=1, description=g.doc)) for g in GATES},
    )


class QaSettings(_GateSettings):
    sample_frames: int = Field(24, ge=1, description="frames scored per segment (evenly spaced)")
    continuity_threshold: float = Field(
        0.85,
        ge=0,
        le=1,
        description="film checks: minimum continuity score per character, location, light and join (Continuity: > 0.85)",
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
        description="renders per segment: a segment failing a gate is re-rendered with a new seed up to this many, "
        "then delivered flagged",
    )

    def thresholds(self) -> Thresholds:
        return Thresholds({g.name: getattr(self, g.setting) for g in GATES})  # the fields made from the registry

    def film_thresholds(self) -> FilmThresholds:
        from reelforge_qa.film_checks import FilmThresholds

        return FilmThresholds(continuity=self.continuity_threshold, sample_frames=self.qa_film_sample_frames)
