"""Plan, then do: what film QA reads and checks, decided from the film event and the storyboard alone.

``plan_film_check`` is pure (no S3, no decoding): the handler reads the storyboard once, plans, and
then executes the plan (``handler.check_and_report``): every small object the job report needs is read
once, side by side (``ReadOnce``), while the film downloads; the segments' kept statistics spare
decoding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reelforge_qa.film_checks import SegmentVideo
from reelforge_shared.events import FilmEncoded
from reelforge_shared.storage import Keys
from reelforge_shared.storyboard import Storyboard


@dataclass(frozen=True, slots=True)
class FilmCheckPlan:
    job_id: str
    version: int
    film_key: str
    report_key: str
    html_key: str
    meta_key: str  # the encoder's metadata of the film: its deliverables
    segments: tuple[SegmentVideo, ...]  # in film order; ``path`` is the file name under the work folder
    indices: tuple[int, ...]  # each one's segment (1-based, the storyboard's numbering)
    attempts: tuple[int, ...]  # each segment's delivered attempt
    takes: tuple[int, ...]  # and its take in the film (reelforge_shared.takes)
    video_keys: tuple[str, ...]  # of ``segments``: each segment's video, or a re-cut's entries as the encoder joined them
    stats_keys: tuple[str, ...]  # what segment QA kept of each (SegmentFilmStats); empty for a re-cut (trimmed entries)
    reads: tuple[str, ...]  # every small object the report reads, read once and side by side

    @property
    def index_of(self) -> dict[str, int]:
        """Segment id -> its 1-based number in the storyboard."""
        return {s.segment_id: n for s, n in zip(self.segments, self.indices, strict=True)}


def plan_film_check(event: FilmEncoded, board: Storyboard) -> FilmCheckPlan:
    """The film check of ``event``'s version: which take of each segment, and every key it reads; a version re-cut from an
    editor's timeline (``event.cut``) is checked as its entries in its order."""
    job, count = event.job_id, len(board.segments)
    delivered = event.delivered_slots(count)
    attempts, takes = tuple(a for a, _ in delivered), tuple(t for _, t in delivered)
    slots = [(n, a, t) for n, (a, t) in enumerate(delivered, start=1)]
    segments = tuple(
        SegmentVideo(Path(f"{n:03d}.mp4"), s.id, tuple(s.characters), s.location, s.transition.type, s.transition.duration)
        for n, s in enumerate(board.segments, start=1)
    )
    indices = tuple(range(1, count + 1))
    video_keys = tuple(Keys.segment_video(job, *slot) for slot in slots)
    stats_keys = tuple(Keys.segment_film_stats(job, *slot) for slot in slots)
    if event.cut:  # an editor's cut: its entries in its order, as the encoder joined them (trims included)
        fps = event.fps
        segments = tuple(
            SegmentVideo(
                Path(f"{p:03d}.mp4"),
                (s := board.segments[e.index - 1]).id,
                tuple(s.characters),
                s.location,
                e.transition,
                e.transition_frames / fps if e.transition_frames else 0.0,
            )
            for p, e in enumerate(event.cut, start=1)
        )
        indices = tuple(e.index for e in event.cut)
        video_keys = tuple(Keys.cut_entry(job, event.version, p) for p in range(1, len(event.cut) + 1))
        stats_keys = ()
    reads = [Keys.storyboard(job), Keys.film_meta(job, event.version)]
    if event.version > 1:
        reads.append(Keys.report(job, event.version - 1))  # what earlier versions asked again, scored now
    for n, attempt, take in slots:
        reads += [Keys.segment_qa(job, n, a, take) for a in range(1, attempt + 1)]  # the segment's history, this one last
        reads += [
            Keys.segment_checked(job, n, attempt, take),
            Keys.segment_generation(job, n, attempt, take),
            Keys.segment_timings(job, n, attempt, take),
        ]
    return FilmCheckPlan(
        job_id=job,
        version=event.version,
        film_key=event.film_key,
        report_key=Keys.report(job, event.version),
        html_key=Keys.report_html(job, event.version),
        meta_key=Keys.film_meta(job, event.version),
        segments=segments,
        indices=indices,
        attempts=attempts,
        takes=takes,
        video_keys=video_keys,
        stats_keys=stats_keys,
        reads=tuple(reads),
    )
