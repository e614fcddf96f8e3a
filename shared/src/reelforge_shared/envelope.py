"""The envelope: the fields an event inherits from the event it follows, and the check that none was lost.

An event built from another (:meth:`reelforge_shared.events.Event.follow`) takes its job and resume from
it; between two segment events the segment's index, id, attempt and take come along too, and between two
film events the film version, the segments' delivered attempts and takes, and the cut. The runner checks every
published event with :func:`lost_envelope`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelforge_shared.events import Event

JOB_ENVELOPE = ("job_id", "resume")
SEGMENT_ENVELOPE = ("index", "segment_id", "attempt", "take", "takes")
FILM_ENVELOPE = ("version", "attempts", "chosen_takes", "cut")


def inherited(cls: type[Event], source: Event) -> dict[str, Any]:
    """The fields an event of ``cls`` built from ``source`` takes from it."""
    from reelforge_shared.events import FilmEvent, SegmentEvent  # the models are built on this module

    names: tuple[str, ...] = JOB_ENVELOPE
    if issubclass(cls, SegmentEvent) and isinstance(source, SegmentEvent):
        names += SEGMENT_ENVELOPE
    if issubclass(cls, FilmEvent) and isinstance(source, FilmEvent):
        names += FILM_ENVELOPE
    return {name: getattr(source, name) for name in names}


def lost_envelope(source: Event, result: Event) -> str | None:
    """Why ``result`` cannot have come from ``source`` (an earlier attempt of the same segment), else None.

    The runner checks every published event with it, so a handler that builds an event by hand and
    drops the attempt fails loudly instead of having its event dropped as a duplicate.
    """
    from reelforge_shared.events import SegmentEvent

    name = type(result).__name__
    if result.job_id == source.job_id and result.resume < source.resume:
        return (
            f"{name} carries resume {result.resume}, but it follows resume {source.resume}: "
            f"build it with {name}.follow(event, ...)"
        )
    if (
        isinstance(source, SegmentEvent)
        and isinstance(result, SegmentEvent)
        and (result.job_id, result.index) == (source.job_id, source.index)
        and result.attempt < source.attempt
    ):
        return (
            f"{name} of segment {result.index} carries attempt {result.attempt}, "
            f"but it follows attempt {source.attempt}: build it with {name}.follow(event, ...)"
        )
    return None
