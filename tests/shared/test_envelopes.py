"""Envelopes are derived, not copied: an event built from another keeps its job, segment and attempt.

``attempt`` is part of the de-duplication id, so an event that lost it would be dropped by JetStream
as a repeat of attempt 1 and the job would hang without an error. ``Event.follow`` carries the
envelope; the runner refuses to publish an event that went back an attempt; object keys come from
``reelforge_shared.storage`` only.
"""

from __future__ import annotations

import ast

import pytest

from reelforge_shared.bus import Bus
from reelforge_shared.events import (
    FilmRequested,
    ModelInfo,
    QaReport,
    RenderSpec,
    SegmentChecked,
    SegmentDelivered,
    SegmentEncoded,
    SegmentFailed,
    SegmentRequested,
)
from reelforge_shared.runner import Route
from reelforge_shared.storage import Keys
from support.bus import dead_letters, serve, stop_service
from support.paths import ROOT

MODEL = ModelInfo(name="m", pipeline="p", random_weights=True)


def _encoded(attempt: int) -> SegmentEncoded:
    return SegmentEncoded(
        job_id="j-env",
        index=3,
        segment_id="s3",
        attempt=attempt,
        video_key="v",
        frame_count=2,
        fps=2,
        width=8,
        height=8,
        duration_s=1,
        model=MODEL,
    )


def test_follow_carries_the_envelope_and_refuses_it_by_hand() -> None:
    checked = SegmentChecked.follow(
        _encoded(2), video_key="v", duration_s=1, qa=QaReport(passed=True, gates={}), report_key="r", model=MODEL
    )
    assert (checked.job_id, checked.index, checked.segment_id, checked.attempt) == ("j-env", 3, "s3", 2)
    assert checked.dedup_id() == "segment.checked:j-env:003:2"
    with pytest.raises(TypeError, match="attempt"):
        SegmentChecked.follow(
            _encoded(2), attempt=1, video_key="v", duration_s=1, qa=QaReport(passed=True, gates={}), report_key="r", model=MODEL
        )
    assert FilmRequested.follow(checked, segment_count=4).job_id == "j-env"  # a job event takes the job alone
    failed = _encoded(2).failure("qa", "boom")
    assert isinstance(failed, SegmentFailed)
    assert failed.attempt == 2
    assert failed.index == 3


def test_a_regeneration_only_moves_the_attempt_forward() -> None:
    spec = RenderSpec(prompt="p", seed=1, frames=2, fps=2, width=8, height=8)
    again = SegmentRequested.retry(_encoded(1), 2, spec=spec)
    assert (again.index, again.segment_id, again.attempt) == (3, "s3", 2)
    with pytest.raises(ValueError, match="later attempt"):
        SegmentRequested.retry(_encoded(2), 2, spec=spec)


async def test_a_handler_cannot_drop_the_attempt(settings, event_log) -> None:
    """A handler that copies the envelope by hand and forgets ``attempt`` fails loudly, nothing is published."""

    def forgetful(event: SegmentEncoded, deps: None) -> list:
        return [
            SegmentChecked(
                job_id=event.job_id,
                index=event.index,
                segment_id=event.segment_id,
                video_key="v",
                duration_s=1,
                qa=QaReport(passed=True, gates={}),
                report_key="r",
                model=MODEL,
            )
        ]

    stop, task = await serve(settings, [Route(SegmentEncoded, forgetful)])
    bus = await Bus.connect(settings)
    await bus.publish(_encoded(2))
    failed = await event_log.wait_for(lambda: event_log.of(SegmentFailed), timeout=20)
    await stop_service(stop, task)
    await bus.close()
    assert not event_log.of(SegmentChecked)
    assert failed[0].attempt == 2
    assert "carries attempt 1, but it follows attempt 2" in failed[0].error
    assert "attempt 1" in (await dead_letters(settings))[0]["error"]


async def test_the_uploader_keeps_the_attempt(overrides, settings, store) -> None:
    from reelforge_uploader.handler import handle_checked
    from reelforge_uploader.service import Settings, build

    deps = build(Settings(**overrides)).deps
    store.put_json(settings.work_bucket, Keys.storyboard("j-env"), {"segments": [{}, {}, {}, {}]})
    video = Keys.segment_video("j-env", 3, 2)
    store.put_bytes(settings.work_bucket, video, b"mp4")
    checked = SegmentChecked(
        job_id="j-env",
        index=3,
        segment_id="s3",
        attempt=2,
        video_key=video,
        duration_s=1,
        qa=QaReport(passed=True, gates={}),
        report_key="r",
        model=MODEL,
    )
    [delivered] = handle_checked(checked, deps)
    assert isinstance(delivered, SegmentDelivered)
    assert delivered.attempt == 2
    assert delivered.segment_id == "s3"


def test_no_service_builds_an_object_key_by_hand() -> None:
    """Every ``jobs/...`` string lives in reelforge_shared.storage; handlers call Keys / DeliveryKeys."""
    offenders = []
    sources = [p for d in ("services", "src") for p in (ROOT / d).rglob("*.py") if "/tests/" not in str(p)]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                text = str(node.values[0].value)
            if text is not None and text.startswith("jobs/"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"object keys built by hand (use reelforge_shared.storage.Keys): {offenders}"
