"""Uploader handlers: deliver checked segments (and a take its owner selected in place of the delivered one), deliver the
film and its report.

The film and its deliverables are delivered as soon as they are stored (the film and thumbnail on
``film.encoded``, the crops, which the encoder stores after the film, on ``film.deliverables_stored``), while QA
checks the film: ``film.checked`` then finds them delivered (the same asset rows, ``Delivery._already``)
and copies only the reports, so the film's server-side copies are off its tail. ``job.completed`` still
comes after QA; only then does a client learn the keys.

Which attempt of a segment was delivered is recorded by the job store alone (it folds
``segment.delivered``); the film is not triggered here: the job ledger's observer publishes
``film.requested`` when it records the last delivery, naming each segment's delivered attempt, and
the encoder and QA read the takes from that event (:mod:`reelforge_shared.jobs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from reelforge_shared.errors import PermanentError, TransientError
from reelforge_shared.events import (
    Event,
    FilmChecked,
    FilmDeliverablesStored,
    FilmEncoded,
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

log = structlog.get_logger("reelforge.uploader")

DELIVERABLE_POLL_S = 0.1  # how often film.checked looks for a deliverable the encoder stores after the film (an S3 HEAD)


@dataclass(kw_only=True, slots=True)
class UploaderDeps:
    store: ObjectStore
    work_bucket: str
    delivery_bucket: str
    delivery: Delivery
    webhooks: WebhookDeps
    # Asks the job store, bypassing any cache, whether the job was cancelled (the service's build() gives it).
    cancelled: Callable[[str], bool] = lambda _job: False
    deliverable_wait_s: float = 20.0  # REELFORGE_UPLOADER_DELIVERABLE_WAIT_S


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


Copy = tuple[str, str, dict[str, Any]]  # work-bucket key, delivery name, the asset row's metadata


def _film_copies(job: str, version: int, film_key: str, deliverables: dict[str, str]) -> list[Copy]:
    """The film and its deliverables (name -> work key) as delivered, film first: the same rows from either handler."""
    copies: list[Copy] = [(film_key, DeliveryKeys.film(job, version), {"film": True})]
    return copies + [
        (key, DeliveryKeys.deliverable(job, name, version), {"deliverable": name}) for name, key in deliverables.items()
    ]


def handle_film_encoded(event: FilmEncoded, deps: UploaderDeps) -> list[Event]:
    """Deliver the film, and those of its deliverables already stored, while QA checks the film (best effort:
    ``film.checked`` delivers whatever is missing, so a failure here is logged and fails nothing). The deliverables are
    those the encoder listed beside the film (its metadata object); its crops are stored after ``film.encoded`` and
    delivered on ``film.deliverables_stored``."""
    job, meta_key = event.job_id, Keys.film_meta(event.job_id, event.version)
    try:
        if not deps.store.exists(deps.work_bucket, meta_key):
            return []  # an encoder before film metadata: film.checked delivers it all
        meta = deps.store.get_json(deps.work_bucket, meta_key)
        _deliver_early(deps, job, event.version, event.film_key, dict(meta.get("deliverables") or {}))
    except (TransientError, PermanentError) as exc:
        log.warning("uploader.early_delivery_failed", job_id=job, version=event.version, error=str(exc))
    return []


def handle_deliverables_stored(event: FilmDeliverablesStored, deps: UploaderDeps) -> list[Event]:
    """Deliver the film's deliverables the encoder stored after the film, while QA checks the film (best effort, as on
    ``film.encoded``)."""
    try:
        _deliver_early(deps, event.job_id, event.version, event.film_key, event.deliverables, film=False)
    except (TransientError, PermanentError) as exc:
        log.warning("uploader.early_delivery_failed", job_id=event.job_id, version=event.version, error=str(exc))
    return []


def _deliver_early(
    deps: UploaderDeps, job: str, version: int, film_key: str, deliverables: dict[str, str], *, film: bool = True
) -> None:
    """The film (``film``) and those of ``deliverables`` stored in the work bucket by now, side by side."""
    copies = _film_copies(job, version, film_key, deliverables)
    with ThreadPoolExecutor(max_workers=len(copies)) as pool:  # server-side copies and checks: waits, side by side

        def deliver(c: Copy) -> None:
            if c[2].get("film") and not film:
                return
            if c[2].get("deliverable") and not deps.store.exists(deps.work_bucket, c[0]):
                return  # stored after the film: delivered on film.deliverables_stored, or by film.checked
            deps.delivery.deliver(job, *c)

        list(pool.map(deliver, copies))


def _stored(deps: UploaderDeps, copy: Copy) -> Copy:
    """A copy as it is; a deliverable's once the encoder has stored it (it stores the crops after ``film.encoded``, and
    film QA may be done first): looked for every ``DELIVERABLE_POLL_S`` for up to ``deps.deliverable_wait_s`` (a retry of
    the event would wait ``REELFORGE_RETRY_DELAY_S`` and more), then a TransientError: ``film.checked`` is delivered
    again after a delay, so ``job.completed`` still means every deliverable delivered."""
    if "deliverable" not in copy[2]:
        return copy
    waited = 0.0
    while not deps.store.exists(deps.work_bucket, copy[0]):
        if waited >= deps.deliverable_wait_s:
            name = copy[2]["deliverable"]
            raise TransientError(f"deliverable {name} ({copy[0]}) is not stored yet: the encoder stores it after the film")
        time.sleep(DELIVERABLE_POLL_S)
        waited += DELIVERABLE_POLL_S
    return copy


def handle_film(event: FilmChecked, deps: UploaderDeps) -> list[Event]:
    """Deliver the film, its deliverables and the job reports QA wrote, then announce the job complete (the film and
    deliverables delivered on ``film.encoded`` and ``film.deliverables_stored`` are found delivered and not copied
    again; a deliverable the encoder has not stored yet is waited for, by a retry of this event after a delay)."""
    job, v = event.job_id, event.version  # each film version is delivered beside the earlier ones
    deliverables = {name: DeliveryKeys.deliverable(job, name, v) for name in event.deliverables}
    html_key = DeliveryKeys.report_html(job, v) if event.report_html_key else None
    film_copy, *deliverable_copies = _film_copies(job, v, event.film_key, event.deliverables)
    jobs = [film_copy, (event.report_key, DeliveryKeys.report(job, v), {"report": "json"}), *deliverable_copies]
    if event.report_html_key and html_key:
        jobs.append((event.report_html_key, html_key, {"report": "html"}))
    with ThreadPoolExecutor(max_workers=len(jobs) + 1) as pool:  # server-side copies and checks: waits, side by side
        reading = pool.submit(deps.store.get_json, deps.work_bucket, event.report_key)  # its counts, for job.completed
        film, report_json, *_ = pool.map(lambda j: deps.delivery.deliver(job, *_stored(deps, j)), jobs)
        report = reading.result()
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
