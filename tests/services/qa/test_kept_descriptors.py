"""Segment QA keeps each segment's continuity descriptor with its film statistics, so film QA does not describe every
segment again on the film's tail; one kept in another shape (an older QA) is not used."""

from __future__ import annotations

import gc
import io
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from reelforge_qa.descriptors import describe
from reelforge_qa.film_subject import describe_subject
from reelforge_qa.frames import ColourSample
from reelforge_qa.segment_film_stats import SegmentFilmStats


def _stats() -> SegmentFilmStats:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (180, 320, 3), dtype=np.uint8) for _ in range(4)]  # ORB finds corners at this size
    sample = ColourSample(frames, frames[:1], frames[-1:], 4, 3.0)
    thumbs = np.stack(frames)
    return SegmentFilmStats(sample, thumbs, b"", describe_subject(frames), descriptor=describe(frames))


def test_kept_descriptor_comes_back_as_it_was_made() -> None:
    stats = _stats()
    back = SegmentFilmStats.from_bytes(stats.to_bytes()).descriptor
    assert back is not None
    assert stats.descriptor is not None
    assert (back.kelvin, back.mired, back.key) == (stats.descriptor.kelvin, stats.descriptor.mired, stats.descriptor.key)
    assert np.array_equal(back.palette, stats.descriptor.palette)
    assert np.array_equal(back.layout, stats.descriptor.layout)
    assert stats.descriptor.orb is not None
    assert np.array_equal(back.orb, stats.descriptor.orb)
    assert back.embedding is None


def test_descriptor_kept_in_another_shape_is_not_used() -> None:
    with np.load(io.BytesIO(_stats().to_bytes()), allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    arrays["descriptor_fields"] = np.append(arrays["descriptor_fields"], "hue")  # a field this QA does not know
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    assert SegmentFilmStats.from_bytes(buffer.getvalue()).descriptor is None


class _Finalised:
    """Garbage in a cycle with a finaliser: the collector runs Python code (and may switch threads) wherever it runs."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        sum(range(50))


def test_kept_statistics_are_read_side_by_side_in_threads() -> None:
    """Film QA reads the segments' statistics in threads. numpy parses each array's header with ``ast.literal_eval``,
    and CPython 3.11's AST builder keeps its recursion depth per interpreter, not per thread (CPython gh-106905): a
    collection inside one parse that switched to another thread's parse failed it with "SystemError: AST constructor
    recursion depth mismatch", and film QA with it (seen on the film's tail bench). Here threads switch as often as
    they can and the collector runs often, with finalisers: before the fix about 2 reads in 100 failed (8 of 400 expected)."""

    def read(_: int) -> SegmentFilmStats:
        for _ in range(200):
            _Finalised()
        return SegmentFilmStats.from_bytes(data)

    data = _stats().to_bytes()
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50, 5, 5)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            read_back = list(pool.map(read, range(400)))
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
    assert all(r.descriptor is not None for r in read_back)
