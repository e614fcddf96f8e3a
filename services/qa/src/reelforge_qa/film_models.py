"""The film-level QA report: continuity per character, location and light, and every join.

Plain pydantic models so the report is JSON (``model_dump(mode="json")``) beside the job report
and the HTML report reads it back. Scores are in [0, 1], 1 is good; a check passes at or above
its threshold (requirement Continuity: > 0.85).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reelforge_shared.events import ReferenceScore


class PairScore(BaseModel):
    a: str = Field(description="segment id")
    b: str = Field(description="segment id, or 'location median' for light")
    score: float
    components: dict[str, float] = Field(default_factory=dict, description="each descriptor's score; the score combines them")
    gated: bool = Field(True, description="false: shown, not judged (a character seen at two different locations)")


class ContinuityCheck(BaseModel):
    kind: Literal["character", "location", "light"]
    name: str
    segments: list[str]
    score: float | None = Field(description="the worst judged pair; None when nothing could be compared")
    threshold: float
    passed: bool
    detail: str = ""
    pairs: list[PairScore] = Field(default_factory=list)


class ReferenceCheck(ReferenceScore):
    """A segment against one of the job's references (a cast sheet or a ``reference_image``): report-only, it fails
    nothing and re-renders nothing (docs/qa.md, "Continuity against the references")."""

    segment_id: str
    threshold: float = Field(description="the film's continuity threshold, for reading the score; not a gate")
    below: bool = Field(description="the score is under the threshold: the segment looks unlike its reference")


class SegmentLight(BaseModel):
    segment_id: str
    location: str | None
    start_s: float
    duration_s: float
    kelvin: float = Field(description="estimated correlated colour temperature of the light (grey-world)")
    key: float = Field(description="mean luminance, linear 0..1")


class Finding(BaseModel):
    kind: Literal["hard_cut_for_dissolve", "hard_cut_for_fade", "flash_frame", "light_jump"]
    time_s: float
    frame: int | None = Field(None, description="film frame (0-based) where it shows")
    segment_id: str | None = None
    detail: str


class Boundary(BaseModel):
    position: int = Field(description="1-based film position of the incoming segment (2 for the first join)")
    before: str
    after: str
    time_s: float = Field(description="where the incoming segment starts in the film")
    frame: int | None = Field(None, description="film frame where the incoming segment starts")
    requested: Literal["cut", "dissolve", "fade"]
    requested_s: float = 0.0
    detected: Literal["cut", "dissolve", "none", "unknown"] = Field(
        description="dissolve: a gradual change (a dissolve or a fade); none: nothing changes; unknown: no compiled film given"
    )
    cut_share: float | None = Field(None, description="the largest step's share of all change around the join (1 = clean cut)")
    same_location: bool
    kelvin_before: float
    kelvin_after: float
    light_score: float
    findings: list[Finding] = Field(default_factory=list)
    passed: bool


class FilmQaReport(BaseModel):
    passed: bool
    threshold: float
    film: str | None = Field(None, description="the compiled film that was read, when one was given")
    duration_s: float
    fps: float | None = None
    embedding_model: str | None = None
    segments: list[SegmentLight]
    characters: list[ContinuityCheck]
    locations: list[ContinuityCheck]
    light: list[ContinuityCheck]
    boundaries: list[Boundary]
    references: list[ReferenceCheck] = Field(
        default_factory=list,
        description="each segment against the cast sheet or reference_image of every character and the location it "
        "shows (report-only: not in passed or failures)",
    )
    flash_frames: list[Finding] = Field(default_factory=list, description="every flash frame in the film, joins included")
    cuts_s: list[float] = Field(default_factory=list, description="every hard cut found in the film (seconds)")
    failures: list[str] = Field(default_factory=list, description="one line per failed check, for people")
