"""Continuity against the job's references: each segment (or take) against the cast sheet or a ``reference_image``.

Film QA compares segments with each other (:mod:`reelforge_qa.continuity`); a film whose every segment drifts the
same way passes that. The references are the fixed point: for each character a segment shows, its
``reference_image`` when the storyboard gives one, else its cast sheet image (drawn by the generator,
:mod:`reelforge_generator.cast`); for its location, the location's cast sheet. A reference is one still, described
at the same working size as a segment's colour sample (``frames.COLOUR_WIDTH``), with the same descriptors:

- a character: the subject localised in the still (:func:`film_subject.describe_subject`, foreground against the
  still's own border ring) against the segment's subject, by its colours (CIELAB) and its build (shape: the spread
  of its pixels down over across). Scale and texture are left out: a sheet is one still at one framing, so the
  subject's height says nothing about identity, and the texture histogram of one frame against a segment's eight
  moved by up to 0.07 with nothing but noise and compression changed (docs/qa.md), which would pick takes by
  noise. The lowest component counts, as in the segment-against-segment check; a segment where no subject is found
  scores its ``found`` share (0: the character is missing). A still where no subject is found cannot be compared:
  no score.
- a location: colour, layout and ORB features, averaged, as the location check averages them.

The score is report-only in film QA (``FilmQaReport.references``: it fails nothing and re-renders nothing; a score
below the continuity threshold is marked ``below``) and one of the two keys of the take policy
(:mod:`reelforge_shared.takes`). docs/qa.md says why.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import av
import cv2
import numpy as np

from reelforge_qa import descriptors as d
from reelforge_qa.film_subject import Subject, describe_subject, subject_scores
from reelforge_qa.frames import COLOUR_WIDTH, small_size
from reelforge_shared.events import ReferenceScore
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import Storyboard

Kind = Literal["character", "location"]
Source = Literal["cast_sheet", "reference_image"]
CHARACTER_COMPONENTS = ("found", "colour", "shape")  # what identifies a character across framings (module docstring)


@dataclass(frozen=True, slots=True)
class Wanted:
    """A reference a segment is scored against: which character or location, and which stored image."""

    kind: Kind
    name: str
    source: Source
    image: str  # work-bucket key


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference image, described once (a sheet is shared by every segment showing its character)."""

    wanted: Wanted
    descriptor: d.Descriptor
    subject: Subject | None  # characters only


STILL_CRF = 18  # the encoder's segments: a reference is read as a segment of it would be


def decode_still(data: bytes) -> np.ndarray:
    """A PNG/JPEG/WebP still as BGR at the segments' working width, read as a segment's frame is read.

    A segment reaches QA as H.264 yuv420p at CRF 18 (the encoder's), decoded and scaled by swscale (area) to the
    working width (:func:`frames.colour_sample`). The still takes the same path: encoded as one H.264 frame at
    CRF 18, decoded and scaled alike, so its colours are subsampled, its levels converted and its grain smoothed as a
    segment's are, and a segment that holds the still scores as the same picture (docs/qa.md, "Continuity against the
    references"). ValueError for bytes that do not decode.
    """
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not an image OpenCV decodes")
    even: np.ndarray[Any, np.dtype[np.uint8]] = np.ascontiguousarray(bgr[: bgr.shape[0] // 2 * 2, : bgr.shape[1] // 2 * 2])
    width, height = small_size(even.shape[1], even.shape[0], COLOUR_WIDTH)  # yuv420p wants even sizes
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = even.shape[1], even.shape[0], "yuv420p"
        stream.options = {"crf": str(STILL_CRF), "preset": "veryfast"}
        container.mux(stream.encode(av.VideoFrame.from_ndarray(even, format="bgr24")))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer, "r", format="h264") as container:
        frame = next(container.decode(video=0))
        return frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA").to_ndarray()


def describe_reference(wanted: Wanted, still: np.ndarray) -> Reference:
    """``still`` (BGR, working size) described as ``wanted`` needs: the subject for a character, the picture always."""
    subject = describe_subject([still]) if wanted.kind == "character" else None
    return Reference(wanted, d.describe([still]), subject)


def score_reference(ref: Reference, subject: Subject | None, descriptor: d.Descriptor) -> ReferenceScore:
    """How close a segment (its subject and descriptor) is to ``ref``, in [0, 1] (None: the still shows no subject)."""
    w = ref.wanted
    common: dict[str, Any] = {"kind": w.kind, "name": w.name, "source": w.source, "image": w.image}
    if w.kind == "location":
        parts = {
            "colour": d.colour(descriptor, ref.descriptor),
            "structure": d.structure(descriptor, ref.descriptor),
            "features": d.features(descriptor, ref.descriptor),
        }
        parts = {k: round(v, 4) for k, v in parts.items() if v is not None}
        score = round(float(np.mean(list(parts.values()))), 4)
        return ReferenceScore(**common, score=score, components=parts, detail="mean of colour, structure, features")
    if ref.subject is None or ref.subject.found < 0.5:
        return ReferenceScore(**common, score=None, detail="no subject found in the reference image: not compared")
    if subject is None:
        return ReferenceScore(**common, score=0.0, components={"found": 0.0}, detail="no subject found in the segment")
    parts = {k: v for k, v in subject_scores(subject, ref.subject).items() if k in CHARACTER_COMPONENTS}
    low = min(parts, key=lambda k: parts[k])
    return ReferenceScore(**common, score=parts[low], components=parts, detail=f"lowest: {low}")


def wanted_references(
    job_id: str,
    board: Storyboard,
    index: int,
    sheets: Sequence[Mapping[str, Any]],
    *,
    own: Callable[[str], bool] | None = None,
) -> list[Wanted]:
    """What segment ``index`` (1-based) is scored against: per character its ``reference_image`` (a key of this job),
    else its cast sheet; its location's cast sheet. ``sheets``: cast sheet entries (``kind``, ``name``, ``image``) of
    the generator's records, the segment's own first (the sheet it was conditioned on wins over another model's).
    ``own``: which ``reference_image`` values are images to read (default: keys under ``job_id``; ``reelforge qa``:
    the local files it checked)."""
    own = own or (lambda ref: Keys.owned(job_id, ref))
    seg = board.segments[index - 1]
    found: dict[tuple[str, str], str] = {}
    for sheet in sheets:
        found.setdefault((str(sheet["kind"]), str(sheet["name"])), str(sheet["image"]))
    out = []
    for name in seg.characters:
        ref = board.characters[name].reference_image
        if ref and own(ref):
            out.append(Wanted("character", name, "reference_image", ref))
        elif (image := found.get(("character", name))) is not None:
            out.append(Wanted("character", name, "cast_sheet", image))
    if seg.location and (image := found.get(("location", seg.location))) is not None:
        out.append(Wanted("location", seg.location, "cast_sheet", image))
    return out


class References:
    """Reference images read and described once each (``read``: key -> bytes, or None when it is not stored)."""

    def __init__(self, read: Callable[[str], bytes | None]) -> None:
        self._read = read
        self._described: dict[Wanted, Reference | None] = {}

    def get(self, wanted: Sequence[Wanted]) -> list[Reference]:
        """The described references of ``wanted``; one not stored or not an image is left out."""
        out = []
        for w in wanted:
            if w not in self._described:
                data = self._read(w.image)
                try:
                    self._described[w] = describe_reference(w, decode_still(data)) if data else None
                except ValueError:
                    self._described[w] = None
            if (ref := self._described[w]) is not None:
                out.append(ref)
        return out
