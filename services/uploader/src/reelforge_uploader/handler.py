"""Uploader handlers: deliver checked segments (and a take its owner selected in place of the delivered one), deliver the
film and its report.

Which attempt of a segment was delivered is recorded by the job store alone (it folds
``segment.delivered``); the film is not triggered here: the job ledger's observer publishes
``film.requested`` when it records the last delivery, naming each segment's delivered attempt, and
the encoder and QA read the takes from that event (:mod:`reelforge_shared.jobs`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from reelforge_shared.events import (
    Event,
    FilmChecked,
    JobCompleted,
    ModelInfo,
    QaReport,
    SegmentChecked,
    SegmentDelivered,
    SegmentEvent,
    SegmentTakeSelected,
)
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.takes import checked_takes, rank_takes, take_score
from reelforge_uploader.delivery import Delivery
from reelforge_uploader.webhooks import WebhookDeps


@dataclass(kw_only=True, slots=True)
class UploaderDeps:
    store: ObjectStore
    work_bucket: str
    delivery_bucket: str
    delivery: Delivery
    webhooks: WebhookDeps
    # Asks the job store, bypassing any cache, whether the job was cancelled (the service's build() gives it).
    cancelled: Callable[[str], bool] = lambda _job: False


def handle_checked(event: SegmentChecked, deps: UploaderDeps) -> list[Event]:
    """Copy the segment to the delivery bucket and announce it (the job store records which attempt and take it was).

    A take of a segment with several (:mod:`reelforge_shared.takes`) waits until every take is checked
    (segment QA's verdicts, read back); then the best by the policy is delivered (whichever uploader sees
    the last take does it: the choice is the same from every copy, and the bus drops the repeated
    ``segment.delivered``).
    """
    if event.takes == 1:
        return [_deliver(event, deps)]
    job, n, attempt = event.job_id, event.index, event.attempt
    checked = checked_takes(deps.store, deps.work_bucket, job, n, attempt, event.takes)
    if not checked:
        return []  # the last take checked delivers the best one
    best = next(k for k, v in rank_takes({k: take_score(qa) for k, qa in checked.items()}).items() if v.won)
    if best == event.take:
        return [_deliver(event, deps)]
    winner = event.model_copy(update={"take": best, **_checked_take(deps, event, best, qa=checked[best])})
    return [_deliver(winner, deps)]


def handle_selected(event: SegmentTakeSelected, deps: UploaderDeps) -> list[Event]:
    """Deliver the take its owner selected in place of the segment's delivered one (its ``segment.delivered`` names the
    film version it goes into; the job store then requests that version): what is delivered is what is in the film."""
    checked = SegmentChecked.follow(event, **_checked_take(deps, event, event.take))
    return [_deliver(checked, deps, selected_for=event.version)]


def _checked_take(deps: UploaderDeps, event: SegmentEvent, take: int, *, qa: QaReport | None = None) -> dict[str, Any]:
    """Segment QA's verdict on take ``take`` of ``event``'s attempt, read back from what it stored: the fields of its
    ``segment.checked`` that differ from take to take."""
    job, n, attempt = event.job_id, event.index, event.attempt
    stored = deps.store.get_json(deps.work_bucket, Keys.segment_checked(job, n, attempt, take))
    report_key = Keys.segment_qa(job, n, attempt, take)
    return {
        "video_key": Keys.segment_video(job, n, attempt, take),
        "duration_s": stored["duration_s"],
        "qa": qa or QaReport.model_validate(deps.store.get_json(deps.work_bucket, report_key)),
        "report_key": report_key,
        "model": ModelInfo.model_validate(stored["model"]),
    }


def _deliver(event: SegmentChecked, deps: UploaderDeps, *, selected_for: int | None = None) -> SegmentDelivered:
    job, n = event.job_id, event.index
    delivery_key = DeliveryKeys.segment(job, n)
    about = {"segment": n, "segment_id": event.segment_id, "attempt": event.attempt, "take": event.take}
    sent = deps.delivery.deliver(job, event.video_key, delivery_key, about)
    return SegmentDelivered.follow(
        event,
        video_key=event.video_key,
        delivery_bucket=deps.delivery_bucket,
        delivery_key=delivery_key,
        url=sent.url,
        storage_provider=sent.provider,
        parts=sent.parts,
        duration_s=event.duration_s,
        qa=event.qa,
        model=event.model,
        selected_for=selected_for,
    )


def handle_film(event: FilmChecked, deps: UploaderDeps) -> list[Event]:
    """Deliver the film, its deliverables and the job reports QA wrote, then announce the job complete."""
    job, v = event.job_id, event.version  # each film version is delivered beside the earlier ones
    deliverables = {name: DeliveryKeys.deliverable(job, name, v) for name in event.deliverables}
    html_key = DeliveryKeys.report_html(job, v) if event.report_html_key else None
    jobs = [
        (event.film_key, DeliveryKeys.film(job, v), {"film": True}),
        (event.report_key, DeliveryKeys.report(job, v), {"report": "json"}),
    ]
    jobs += [(key, deliverables[name], {"deliverable": name}) for name, key in event.deliverables.items()]
    if event.report_html_key and html_key:
        jobs.append((event.report_html_key, html_key, {"report": "html"}))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:  # server-side copies and checks: waits, side by side
        film, report_json, *_ = pool.map(lambda j: deps.delivery.deliver(job, *j), jobs)
    report = deps.store.get_json(deps.work_bucket, event.report_key)
    if deps.cancelled(job):  # cancel wins: a job cancelled while its film was delivered never completes
        return []
    return [
        JobCompleted.follow(
            event,
            delivery_bucket=deps.delivery_bucket,
            film_key=DeliveryKeys.film(job, v),
            film_url=film.url,
            film_storage_provider=film.provider,
            film_parts=film.parts,
            report_key=DeliveryKeys.report(job, v),
            report_url=report_json.url,
            duration_s=event.duration_s,
            segment_count=len(report["segments"]),
            qa_failed_segments=[s["index"] for s in report["segments"] if not s.get("qa_passed", True)],
            report_html_key=html_key,
            deliverables=deliverables,
            film_qa_passed=event.passed,
        )
    ]
