"""QA handler: SegmentEncoded -> scores read back from the MP4 -> SegmentChecked (report in S3 too)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from reelforge_qa.scores import Expected, Thresholds, score_video
from reelforge_shared.events import Event, QaReport, SegmentChecked, SegmentEncoded
from reelforge_shared.storage import Keys, ObjectStore


@dataclass(slots=True)
class QaDeps:
    store: ObjectStore
    bucket: str
    thresholds: Thresholds
    sample_frames: int = 24


def handle(event: SegmentEncoded, deps: QaDeps) -> list[Event]:
    """Score the segment unless its report is stored (a redelivery re-announces the stored report)."""
    report_key = Keys.segment_qa(event.job_id, event.index)
    if deps.store.exists(deps.bucket, report_key):
        report = QaReport.model_validate(deps.store.get_json(deps.bucket, report_key))
    else:
        with tempfile.TemporaryDirectory(prefix="reelforge-qa-") as tmp:
            video = deps.store.get_file(deps.bucket, event.video_key, Path(tmp, "segment.mp4"))
            expected = Expected(event.width, event.height, event.fps, event.frame_count)
            report = score_video(video, expected, deps.thresholds, deps.sample_frames)
        deps.store.put_json(deps.bucket, report_key, report.model_dump(mode="json"))
    return [
        SegmentChecked(
            job_id=event.job_id, index=event.index, segment_id=event.segment_id, attempt=event.attempt,
            video_key=event.video_key, duration_s=event.duration_s, qa=report, report_key=report_key, model=event.model,
        )
    ]
