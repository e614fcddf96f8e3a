"""Film-level QA: continuity across segments and analysis of every join, as one report.

``check_film`` is a pure function of local files: the bus flow downloads the segment videos (and
the compiled film) and calls it; ``reelforge qa`` calls it on videos on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from reelforge_qa import transitions as tr
from reelforge_qa.continuity import Described, character_checks, light_checks, light_score, location_checks
from reelforge_qa.descriptors import Descriptor, describe
from reelforge_qa.film_models import Boundary, FilmQaReport, Finding, ReferenceCheck, SegmentLight
from reelforge_qa.film_subject import Subject, describe_subject
from reelforge_qa.frames import ColourSample, colour_sample, sample_indices
from reelforge_qa.references import Reference, score_reference
from reelforge_qa.segment_film_stats import FilmPackets, SegmentFilmStats, film_packets, read_windows
from reelforge_shared.colour import bgr_to_rgb, cct_of_linear_rgb, grey_world_rgb, luma_of_linear_rgb
from reelforge_shared.events import ReferenceScore


class Embedder(Protocol):
    """An image-embedding model: unit vectors, one row per BGR frame."""

    name: str

    def embed(self, bgr_frames: list[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class SegmentVideo:
    """One segment in film order, with what the storyboard says about it."""

    path: Path
    segment_id: str
    characters: tuple[str, ...] = ()
    location: str | None = None
    transition: Literal["cut", "dissolve", "fade"] = "cut"  # into this segment; fade: through black
    transition_s: float = 0.0


@dataclass(frozen=True, slots=True)
class FilmThresholds:
    continuity: float = 0.85  # requirement Continuity: score > 0.85; also light and joins
    sample_frames: int = 8  # colour frames per segment for the descriptors
    embedding_frames: int = 4  # frames per segment through the embedding model (slow on a CPU)


def _light_of(frames: list[np.ndarray]) -> tuple[float, float]:
    """Colour temperature and luminance of BGR frames: one grey-world estimate for both."""
    light = grey_world_rgb(bgr_to_rgb(f) for f in frames)
    return cct_of_linear_rgb(light), luma_of_linear_rgb(light)


def _boundary_light(before: list[np.ndarray], after: list[np.ndarray]) -> tuple[float, float, float, float, float]:
    (k_a, key_a), (k_b, key_b) = _light_of(before), _light_of(after)
    score, delta_mired, stops = light_score(k_a, key_a, k_b, key_b)
    return k_a, k_b, score, delta_mired, stops


def _join(
    position: int,
    a: SegmentVideo,
    b: SegmentVideo,
    start_s: float,
    samples: tuple[ColourSample, ColourSample],
    film: tr.FilmFrames | None,
    threshold: float,
) -> Boundary:
    requested = b.transition
    same = a.location == b.location
    frame, detected, share, findings = None, "unknown", None, []
    before, after = samples[0].tail, samples[1].head
    if film is not None:
        frame = round(start_s * film.fps)
        overlap = round(b.transition_s * film.fps) if requested != "cut" else 0
        if requested != "cut" and overlap < 2:
            requested = "cut"  # the encoder joins a dissolve or fade shorter than two frames with a cut
        reading = tr.read_join(film, frame, overlap)
        detected, share = reading.detected, reading.cut_share
        if requested != "cut" and detected == "cut":
            findings.append(
                Finding(
                    kind=f"hard_cut_for_{requested}",
                    time_s=round(reading.largest_at / film.fps, 3),
                    frame=reading.largest_at,
                    segment_id=b.segment_id,
                    detail=f"a {requested} of {b.transition_s:g} s was asked; one step holds {share:.0%} of the change",
                )
            )
        reach = max(overlap, 1) + tr.FILM_EDGE
        before = film.thumbs[max(0, frame - reach) : max(1, frame - overlap)]
        after = film.thumbs[frame + overlap : frame + reach]
    k_a, k_b, light, delta_mired, stops = _boundary_light(before, after or samples[1].head)
    if same and light < threshold:
        findings.append(
            Finding(
                kind="light_jump",
                time_s=round(start_s, 3),
                frame=frame,
                segment_id=b.segment_id,
                detail=f"{k_a:.0f} K -> {k_b:.0f} K ({delta_mired:.0f} mired), {stops:.2f} stops, at one location",
            )
        )
    return Boundary(
        position=position,
        before=a.segment_id,
        after=b.segment_id,
        time_s=round(start_s, 3),
        frame=frame,
        requested=requested,
        requested_s=b.transition_s if requested != "cut" else 0.0,
        detected=detected,
        cut_share=share,
        same_location=same,
        kelvin_before=round(k_a),
        kelvin_after=round(k_b),
        light_score=round(light, 4),
        findings=findings,
        passed=not findings,
    )


def _subject_embedding(embedder: Embedder, frames: list[np.ndarray], subject: Subject) -> np.ndarray | None:
    """The embedding of the subject's crops (the frames it was found in), as one unit vector."""
    crops = [f[y : y + h, x : x + w] for f, (x, y, w, h) in zip(frames, subject.boxes, strict=False) if w >= 8 and h >= 8]
    if not crops:
        return None
    mean = embedder.embed(crops).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _describe(
    segments: Sequence[SegmentVideo],
    samples: list[ColourSample],
    embedder: Embedder | None,
    embedding_frames: int,
    subjects: Sequence[Subject | None],
    descriptors: Sequence[Descriptor | None],
) -> tuple[list[Described], list[SegmentLight], list[float]]:
    """Descriptors (the ones segment QA kept, else made here), light and start time of each segment (film time: the sum of
    the durations before it)."""
    items, lights, starts, t = [], [], [], 0.0
    for seg, sample, subject, kept in zip(segments, samples, subjects, descriptors, strict=True):
        descriptor = kept or describe(sample.frames)
        if seg.characters and subject is None:
            subject = describe_subject(sample.frames)
        subject_embedding = None
        if embedder is not None:
            vectors = embedder.embed([sample.frames[i] for i in sample_indices(len(sample.frames), embedding_frames)])
            mean = vectors.mean(axis=0)
            descriptor.embedding = mean / max(float(np.linalg.norm(mean)), 1e-12)
            if subject is not None:
                subject_embedding = _subject_embedding(embedder, sample.frames, subject)
        items.append(Described(seg.segment_id, seg.characters, seg.location, descriptor, subject, subject_embedding))
        duration = sample.frame_count / sample.fps if sample.fps else 0.0
        lights.append(
            SegmentLight(
                segment_id=seg.segment_id,
                location=seg.location,
                start_s=round(t, 3),
                duration_s=round(duration, 3),
                kelvin=round(descriptor.kelvin),
                key=round(descriptor.key, 4),
            )
        )
        starts.append(t)
        t += duration
    return items, lights, starts


def _flashes(frames: tr.FilmFrames, segments: Sequence[SegmentVideo], starts: list[float]) -> list[Finding]:
    found = []
    for k in tr.flash_frames(frames):
        at = k / frames.fps
        # The last segment starting at or before the frame (a microsecond of slack for summed float durations).
        owner = next((s.segment_id for s, start in zip(segments[::-1], starts[::-1], strict=True) if start <= at + 1e-6), None)
        found.append(Finding(kind="flash_frame", time_s=round(at, 3), frame=k, segment_id=owner, detail=f"frame {k} stands out"))
    return found


def _film_around_joins(
    film: Path,
    packets: FilmPackets,
    stats: Sequence[SegmentFilmStats],
    segments: Sequence[SegmentVideo],
    starts: list[float],
) -> tr.FilmFrames | None:
    """The film's thumbnails: the segments' own laid end to end, with the frames decoded from the film wherever its
    packets are not the segments' own: around each transition, and around any other frame that differs.

    The film is joined by stream copy, so only its transitions hold frames no segment has; a join by
    cut is proved by its packets (``packet_digests``). Segments' statistics without packet digests:
    every join is decoded. None when the film's frame count is not the segments' (it was not joined
    that way): then it is read whole.
    """
    digests, setup, fps = packets.digests, packets.setup, packets.fps
    thumbs = [t for s in stats for t in s.thumbs]
    if len(digests) != len(thumbs):
        return None
    own = None
    if all(s.packets is not None and s.setup == setup for s in stats):
        own = np.concatenate([s.packets for s in stats if s.packets is not None])
    differs = np.ones(len(thumbs), bool) if own is None or len(own) != len(digests) else digests != own
    windows = []
    for i in range(1, len(segments)):
        frame = round(starts[i] * fps)
        overlap = round(segments[i].transition_s * fps) if segments[i].transition != "cut" else 0
        reach = max(overlap, 1) + tr.FILM_EDGE + 1
        lo, hi = max(0, frame - reach), min(len(thumbs), frame + reach)
        if differs[lo:hi].any():
            # from the first frame that is not a segment's own: those before it are the segments' (equal packets)
            windows.append((lo + int(np.argmax(differs[lo:hi])), hi))
            differs[lo:hi] = False
    stray = np.flatnonzero(differs)  # frames that should be a segment's own and are not: decoded, with what joins them
    for run in np.split(stray, np.flatnonzero(np.diff(stray) > 1) + 1) if len(stray) else []:
        windows.append((int(run[0]), int(run[-1]) + 1))
    for k, thumb in read_windows(film, windows).items():
        thumbs[k] = thumb
    return tr.film_frames(thumbs, fps)


def _film_frames(
    film: Path,
    packets: Callable[[], FilmPackets] | None,
    stats: Sequence[SegmentFilmStats] | None,
    segments: Sequence[SegmentVideo],
    starts: list[float],
) -> tr.FilmFrames:
    """The film's thumbnails: from the segments' statistics and its joins when it was joined from them, else read whole."""
    read = packets() if packets is not None else None  # the film is whole once its packets are read
    frames = _film_around_joins(film, read or film_packets(film), stats, segments, starts) if stats is not None else None
    return frames or tr.read_film(film)


def check_film(
    segments: Sequence[SegmentVideo],
    thresholds: FilmThresholds | None = None,
    *,
    film: Path | None = None,
    packets: Callable[[], FilmPackets] | None = None,
    embedder: Embedder | None = None,
    stats: Sequence[SegmentFilmStats] | None = None,
    references: Sequence[Sequence[Reference | ReferenceScore]] | None = None,
) -> FilmQaReport:
    """Continuity per character, location and light, and every join (in the compiled ``film`` when given).

    ``stats`` (one per segment, from segment QA) spare decoding the segments, and the film but around its joins.
    ``packets``: the film is still arriving at ``film`` and its packets are read as it does; called (it waits for the
    whole film) after the continuity checks, which need no film. Without it the film's packets are read here.
    ``references`` (one list per segment: the cast sheets and reference images of what it shows) are scored
    against each segment as well (report-only); an entry segment QA already scored (a ``ReferenceScore``) is taken
    as it is.
    """
    thresholds = thresholds or FilmThresholds()
    limit = thresholds.continuity
    if stats is not None:
        samples = [s.sample for s in stats]
    else:
        samples = [colour_sample(s.path, thresholds.sample_frames) for s in segments]
    subjects = [s.subject for s in stats] if stats is not None else [None] * len(segments)
    descriptors = [s.descriptor for s in stats] if stats is not None else [None] * len(segments)
    items, lights, starts = _describe(segments, samples, embedder, thresholds.embedding_frames, subjects, descriptors)
    with ThreadPoolExecutor(max_workers=1) as pool:  # the film (its download, demux, windows) beside the continuity checks
        reading = pool.submit(_film_frames, film, packets, stats, segments, starts) if film is not None else None
        characters, locations = character_checks(items, limit), location_checks(items, limit)
        light = light_checks(items, limit)
        checked_references = reference_checks(items, references or [[] for _ in segments], limit)
        frames = reading.result() if reading is not None else None
    boundaries = [
        _join(i + 1, segments[i - 1], segments[i], starts[i], (samples[i - 1], samples[i]), frames, limit)
        for i in range(1, len(segments))
    ]
    flashes = _flashes(frames, segments, starts) if frames is not None else []
    cuts = [round(k / frames.fps, 3) for k in tr.detect_cuts(frames)] if frames is not None else []
    for boundary in boundaries:  # a flash inside a join's window belongs to the join too
        near = [
            f
            for f in flashes
            if boundary.frame is not None and f.frame is not None and abs(f.frame - boundary.frame) <= tr.FILM_EDGE + 1
        ]
        boundary.findings += near
        boundary.passed = not boundary.findings
    report = FilmQaReport(
        passed=False,
        threshold=limit,
        film=str(film) if film else None,
        duration_s=round(sum(s.duration_s for s in lights), 3),
        fps=frames.fps if frames else None,
        embedding_model=embedder.name if embedder else None,
        segments=lights,
        characters=characters,
        locations=locations,
        light=light,
        boundaries=boundaries,
        flash_frames=flashes,
        cuts_s=cuts,
        references=checked_references,
    )
    report.failures = failures(report)
    report.passed = not report.failures
    return report


def reference_checks(
    items: Sequence[Described], references: Sequence[Sequence[Reference | ReferenceScore]], threshold: float
) -> list[ReferenceCheck]:
    """Each segment against each of its references (reelforge_qa.references), marked ``below`` under ``threshold``."""
    checks = []
    for item, refs in zip(items, references, strict=True):
        for ref in refs:
            scored = ref if isinstance(ref, ReferenceScore) else score_reference(ref, item.subject, item.descriptor)
            below = scored.score is not None and scored.score < threshold
            checks.append(ReferenceCheck(**scored.model_dump(), segment_id=item.segment_id, threshold=threshold, below=below))
    return checks


def failures(report: FilmQaReport) -> list[str]:
    lines = [f"{c.kind} {c.name}: {c.detail}" for c in (*report.characters, *report.locations, *report.light) if not c.passed]
    for b in report.boundaries:
        joins = [f for f in b.findings if f.kind != "flash_frame"]  # flash frames are listed once, below
        lines += [f"join {b.before}->{b.after} at {f.time_s:.2f} s: {f.kind} ({f.detail})" for f in joins]
    lines += [f"flash frame at {f.time_s:.2f} s (frame {f.frame}, segment {f.segment_id})" for f in report.flash_frames]
    return lines
