"""A job's derived renditions in its record, moved by pure transitions (no servers): recorded once per film version,
made or failed by their own request's event only, deleted, and bounded."""

from __future__ import annotations

from reelforge_shared.events import RenditionEncoded, RenditionFailed
from reelforge_shared.jobs import JobRecord, fold
from reelforge_shared.jobs.record import MAX_RENDITIONS
from reelforge_shared.jobs.transitions import ask_rendition, forget_rendition

RID = "3f9a0c1e7b2d4a68"
LOOP = {"kind": "loop", "times": 2}


def _made(request: int, rid: str = RID) -> RenditionEncoded:
    return RenditionEncoded(job_id="j-r", version=1, rendition_id=rid, request=request, key=f"jobs/j-r/{rid}.mp4", size_bytes=9)


def test_a_rendition_is_recorded_once_and_made_by_its_own_request() -> None:
    record = JobRecord(job_id="j-r", films={1: "f"}, film_version=1)
    assert ask_rendition(record, 1, RID, LOOP, None) is None
    changes = record.change_id
    assert ask_rendition(record, 1, RID, LOOP, None) is None  # asked again: nothing changes
    assert record.change_id == changes
    asked = record.renditions[1][RID]
    assert (asked.kind, asked.params, asked.status, asked.request) == ("loop", {"times": 2}, "pending", 1)
    fold(record, _made(request=7))  # another request's event (of one deleted since): not this one's
    assert record.renditions[1][RID].status == "pending"
    fold(record, _made(request=1))
    assert (record.renditions[1][RID].status, record.renditions[1][RID].size_bytes) == ("ready", 9)


def test_a_deleted_rendition_stays_deleted_and_asked_again_is_a_new_request() -> None:
    record = JobRecord(job_id="j-r", films={1: "f"}, film_version=1)
    ask_rendition(record, 1, RID, LOOP, None)
    gone = forget_rendition(record, 1, RID)
    assert gone is not None
    assert record.renditions == {}
    assert forget_rendition(record, 1, RID) is None
    fold(record, _made(request=1))  # made after it was deleted: no record comes back
    assert record.renditions == {}
    ask_rendition(record, 1, RID, LOOP, None)
    assert record.renditions[1][RID].request == 2
    fold(record, RenditionFailed(job_id="j-r", version=1, rendition_id=RID, request=2, error="no sound"))
    assert (record.renditions[1][RID].status, record.renditions[1][RID].error) == ("failed", "no sound")


def test_a_rendition_stored_before_it_was_recorded_is_recorded_as_made() -> None:
    record = JobRecord(job_id="j-r", films={1: "f"}, film_version=1)
    ask_rendition(record, 1, RID, LOOP, {"key": "jobs/j-r/x.mp4", "size_bytes": 5})
    assert (record.renditions[1][RID].status, record.renditions[1][RID].key) == ("ready", "jobs/j-r/x.mp4")


def test_a_job_keeps_a_bounded_number_of_renditions() -> None:
    record = JobRecord(job_id="j-r", films={1: "f", 2: "g"}, film_version=2)
    for i in range(MAX_RENDITIONS):
        assert ask_rendition(record, 1 + i % 2, f"{i:016x}", {"kind": "loop", "times": i + 1}, None) is None
    refused = ask_rendition(record, 1, "f" * 16, LOOP, None)
    assert refused is not None
    assert f"{MAX_RENDITIONS} renditions at most" in refused
    forget_rendition(record, 2, f"{1:016x}")
    assert ask_rendition(record, 1, "f" * 16, LOOP, None) is None
