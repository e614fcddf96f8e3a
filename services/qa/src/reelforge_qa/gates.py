"""The QA gate registry: every per-segment picture gate in one table.

Each row names the gate, the function that scores it (a score in [0, 1], 1 is good, and a detail in
words), its default threshold (the setting ``REELFORGE_<NAME>_THRESHOLD`` is made from the row) and
whether a new seed can fix a failure (then QA re-renders the segment). Settings
(:class:`reelforge_qa.config.QaSettings`), the re-render decision (:mod:`reelforge_qa.regenerate`) and
the report all read this table: adding a gate is one function and one row.

The technical gate (the file read back: size, rate, frames, codec, sound) is not a row: it is scored
from the file's metadata (:func:`reelforge_qa.scores.technical_gate`), passes at 1.0 and a new seed
cannot fix it (it is the encoder's fault).

Sharpness, blockiness and noise together are the "artifacts" requirement (docs/requirements.md); they
stay separate so a report says which artifact it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from reelforge_qa.frames import FrameSet
from reelforge_qa.temporal import flicker, smoothness
from reelforge_shared.events import QaGate

TECHNICAL = "technical"


# --- The gates' functions: frames in, (score, detail) out ------------------------------------------------


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian at the working size, mapped v / (v + 100) (100: a frame starts to look soft)."""
    variance = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return variance / (variance + 100.0)


def exposure(gray: np.ndarray) -> float:
    """Penalises clipped pixels and a mean luminance far from mid-grey."""
    clipped = float(np.mean((gray <= 4) | (gray >= 251)))
    off_centre = max(0.0, abs(float(gray.mean()) - 118.0) - 60.0) / 68.0  # 58..178 is a fine mean
    return max(0.0, (1.0 - clipped) * (1.0 - off_centre))


def noise(gray: np.ndarray) -> float:
    """The median absolute residual after a 3x3 median filter (a robust sigma), mapped 1 - sigma / 20."""
    residual = np.abs(gray.astype(np.int16) - cv2.medianBlur(gray, 3).astype(np.int16))
    sigma = 1.4826 * float(np.median(residual))
    return max(0.0, 1.0 - sigma / 20.0)


def _worst_of(values: list[float], frames: FrameSet) -> tuple[float, str]:
    values = values or [0.0]
    worst = int(np.argmin(values))
    at = frames.sampled_index[worst] if frames.sampled_index else 0
    return float(np.mean(values)), f"worst frame {at}: {values[worst]:.3f}"


def per_frame(measure: Callable[[np.ndarray], float]) -> Callable[[FrameSet], tuple[float, str]]:
    """A gate scored on each sampled frame: the mean, with the worst frame named."""

    def score(frames: FrameSet) -> tuple[float, str]:
        return _worst_of([measure(f) for f in frames.work_gray], frames)

    score.__name__ = measure.__name__
    return score


def blockiness_gate(frames: FrameSet) -> tuple[float, str]:
    """Compression blocks on the 8-pixel grid (:func:`reelforge_qa.frames.blockiness`)."""
    return _worst_of(frames.block_scores or [1.0], frames)


def flicker_gate(frames: FrameSet) -> tuple[float, str]:
    """Frame-to-frame luminance jumps over every frame (:mod:`reelforge_qa.temporal`)."""
    score, frame = flicker(frames.luma)
    return score, "steady" if frame is None else f"frame {frame} stands out most"


def smoothness_gate(frames: FrameSet) -> tuple[float, str]:
    """Jumps that motion cannot explain (:mod:`reelforge_qa.temporal`)."""
    score, frame = smoothness(frames.small)
    return score, "one frame" if frame is None else f"worst jump into frame {frame}"


# --- The table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Gate:
    name: str
    score: Callable[[FrameSet], tuple[float, str]]
    threshold: float  # the default of REELFORGE_<NAME>_THRESHOLD
    rerender_fixes: bool  # whether a new seed can fix a failure (then QA re-renders the segment)
    doc: str  # what the setting means, for the settings table

    @property
    def setting(self) -> str:
        return f"{self.name}_threshold"


GATES: tuple[Gate, ...] = (
    Gate(
        name="sharpness", score=per_frame(sharpness), threshold=0.2, rerender_fixes=True, doc="blur gate: minimum sharpness score"
    ),
    Gate(name="exposure", score=per_frame(exposure), threshold=0.5, rerender_fixes=True, doc="exposure gate: minimum score"),
    Gate(name="noise", score=per_frame(noise), threshold=0.5, rerender_fixes=True, doc="noise gate: minimum score (1 = clean)"),
    Gate(
        name="blockiness",
        score=blockiness_gate,
        threshold=0.5,
        rerender_fixes=True,
        doc="compression-block gate: minimum score (0.5: grid steps 1.5x the texture)",
    ),
    Gate(
        name="flicker",
        score=flicker_gate,
        threshold=0.5,
        rerender_fixes=True,
        doc="flicker gate: minimum score (0.5: a frame 12 luma levels off its neighbours)",
    ),
    Gate(
        name="smoothness",
        score=smoothness_gate,
        threshold=0.5,
        rerender_fixes=True,
        doc="temporal smoothness gate: minimum score (0.5: half the contrast unexplained by motion)",
    ),
)
GATES_BY_NAME: dict[str, Gate] = {g.name: g for g in GATES}
# The gates whose failure QA answers with a re-render (a new seed); the others are delivered flagged.
RERENDER_GATES: frozenset[str] = frozenset(g.name for g in GATES if g.rerender_fixes)


TECHNICAL_DOC = "technical gate: the file read back (size, rate, frames, codec, sound) is what was asked"


def about(name: str) -> tuple[str, str]:
    """What the report says of a gate: what it checks and what QA does when it fails, from its row (the technical
    gate: the encoder's fault, a new seed cannot fix it). A gate the table no longer has (an older report): blanks."""
    if name == TECHNICAL:
        return TECHNICAL_DOC, "flagged (a new seed cannot fix it)"
    gate = GATES_BY_NAME.get(name)
    if gate is None:
        return "", ""
    return gate.doc, "re-rendered with a new seed" if gate.rerender_fixes else "flagged (a new seed cannot fix it)"


@dataclass(frozen=True)
class Thresholds:
    """Each gate's threshold by name (from the settings); a gate not named takes its row's default."""

    by_gate: Mapping[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.by_gate.get(name, GATES_BY_NAME[name].threshold)


def quality_gates(frames: FrameSet, thresholds: Thresholds) -> dict[str, QaGate]:
    """Every row's gate, in the table's order, from one pass over the frames."""
    gates = {}
    for gate in GATES:
        score, detail = gate.score(frames)
        score = round(float(np.clip(score, 0.0, 1.0)), 4)
        threshold = thresholds[gate.name]
        gates[gate.name] = QaGate(score=score, threshold=threshold, passed=score >= threshold, detail=detail)
    return gates
