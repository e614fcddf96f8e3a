"""The job's path in one table: what each service consumes, through which durable and handler, and what it may publish.

Everything that used to repeat the topology is derived from :data:`FLOW`:

- each service's routes (``build()`` hands its handler functions to :func:`routes`, which checks them
  against the table and sets the observer / cancelled-job flags),
- the NATS permissions and S3 rights (``reelforge_shared.access``),
- the stream, durable, dead-letter and KV bucket names (:func:`stream_name`, :func:`durable_name`, ...),
- the failure subjects each service may publish (:func:`failures`): only those of the stages it runs,
- the README's flow diagram (:func:`mermaid`, checked by a test).

Adding an event type: the event class (``events.py``), its row here, its handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reelforge_shared.events import (
    Event,
    FilmChecked,
    FilmDeliverablesStored,
    FilmEncoded,
    FilmRequested,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    RenditionEncoded,
    RenditionFailed,
    RenditionRequested,
    SegmentChecked,
    SegmentDelivered,
    SegmentEncoded,
    SegmentEvent,
    SegmentFailed,
    SegmentGenerated,
    SegmentRequested,
    SegmentRerenderRequested,
    SegmentTakeSelected,
    WebhookFailed,
    WebhookRequested,
)

Rights = Literal["", "read", "write"]

# The JetStream KV buckets (named ``{STREAM}_{name}``): made by ``reelforge bootstrap`` only; every service
# reads them, the services with ``kv="write"`` write them. A new bucket is one more name here.
KV_BUCKETS: tuple[str, ...] = ("jobs",)

# The failure events whose subject carries the stage that gave up (``segment.failed.encoder``), so that
# each stage's failures can be published by that stage's service alone.
STAGED_FAILURES: tuple[type[Event], ...] = (SegmentFailed, JobFailed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Consume:
    """One durable consumer of a service: the event, the handler (its function name) and how cancelled jobs are met."""

    event: type[Event]
    handler: str
    after_cancel: bool = False  # runs for cancelled jobs too: notifications (observers always do)
    observer: bool = False  # only records what happened; its failure is dead-lettered, never announced
    fails_as: type[Event] | None = None  # the event the runner announces its failure with; None: the usual one

    def failure(self) -> type[Event] | None:
        """What the runner publishes when this route gives up (None for an observer: dead letter only)."""
        if self.observer:
            return None
        if self.fails_as is not None:
            return self.fails_as
        return SegmentFailed if issubclass(self.event, SegmentEvent) else JobFailed


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceFlow:
    """What one service consumes and may publish, and its object-store and KV rights."""

    consumes: tuple[Consume, ...]
    publishes: tuple[type[Event], ...]
    work: Rights
    delivery: Rights
    kv: Rights = "read"  # every service reads the job ledger (is the job cancelled?); the gateway keeps it
    note: str = ""


def _observe(*events: type[Event]) -> tuple[Consume, ...]:
    return tuple(Consume(event=e, handler="observe", observer=True) for e in events)


FLOW: dict[str, ServiceFlow] = {
    # The job ledger's observer folds every job event in (the last delivery asks for the film); the API submits,
    # cancels and re-renders (also when a service asks for it), and redirects to films in the delivery bucket.
    "gateway": ServiceFlow(
        consumes=(
            *_observe(
                JobSubmitted,
                SegmentRequested,
                SegmentGenerated,
                SegmentEncoded,
                SegmentChecked,
                SegmentDelivered,
                SegmentFailed,
                FilmRequested,
                FilmEncoded,
                FilmChecked,
                JobCompleted,
                JobFailed,
                JobCancelled,
                RenditionEncoded,  # a derived rendition's record: made, or why not
                RenditionFailed,
            ),
            Consume(event=SegmentRerenderRequested, handler="rerender"),
        ),
        # segment.generated: a reused shot (reelforge_shared.shots), its frames copied at submission, never rendered.
        # rendition.requested: a derived rendition of a film version asked through the API (speed, audio, stills, ...).
        # segment.take_selected: the owner put another take into the film; the uploader delivers it in place.
        publishes=(
            JobSubmitted,
            SegmentRequested,
            SegmentGenerated,
            SegmentTakeSelected,
            FilmRequested,
            JobCancelled,
            RenditionRequested,
        ),
        work="write",
        delivery="read",
        kv="write",
        note="API + job ledger",
    ),
    # segment.requested: the segment that continues from the last frame of the one just rendered (reelforge_shared.chain).
    "generator": ServiceFlow(
        consumes=(Consume(event=SegmentRequested, handler="handle"),),
        publishes=(SegmentGenerated, SegmentRequested),
        work="write",
        delivery="",
        note="frames",
    ),
    "encoder": ServiceFlow(
        consumes=(
            Consume(event=SegmentGenerated, handler="handle_segment"),
            Consume(event=FilmRequested, handler="handle_film"),
            # Its own film.encoded: the film's deliverables stored after the film, off the path to QA (made again here
            # when the encoder that made the film died before storing them).
            Consume(event=FilmEncoded, handler="handle_deliverables"),
            # A derived rendition that cannot be made fails alone (rendition.failed), never the job.
            Consume(event=RenditionRequested, handler="handle_rendition", fails_as=RenditionFailed),
        ),
        publishes=(SegmentEncoded, FilmEncoded, FilmDeliverablesStored, RenditionEncoded, RenditionFailed),
        work="write",
        delivery="",
        note="MP4s",
    ),
    # A failed gate re-renders the segment with a new seed (segment.requested, the next attempt); low continuity
    # asks the gateway for a re-render (segment.rerender_requested), which makes a new film version.
    "qa": ServiceFlow(
        consumes=(Consume(event=SegmentEncoded, handler="handle"), Consume(event=FilmEncoded, handler="handle_film")),
        publishes=(SegmentChecked, SegmentRequested, FilmChecked, SegmentRerenderRequested),
        work="write",
        delivery="",
        note="gates, continuity",
    ),
    # Delivery, then the webhooks of finished jobs (and of delivered segments when they are asked for). The film and its
    # deliverables are delivered as they are stored (film.encoded, film.deliverables_stored), while QA checks the film;
    # film.checked adds the reports and completes (waiting, by retries, for deliverables not stored yet).
    "uploader": ServiceFlow(
        consumes=(
            Consume(event=SegmentChecked, handler="handle_checked"),
            Consume(event=SegmentTakeSelected, handler="handle_selected"),
            Consume(event=FilmEncoded, handler="handle_film_encoded"),
            Consume(event=FilmDeliverablesStored, handler="handle_deliverables_stored"),
            Consume(event=FilmChecked, handler="handle_film"),
            Consume(event=JobCompleted, handler="fan_out", observer=True),
            Consume(event=JobFailed, handler="fan_out", observer=True),
            Consume(event=JobCancelled, handler="fan_out", observer=True),
            Consume(event=SegmentDelivered, handler="fan_out", observer=True),
            Consume(event=WebhookRequested, handler="send_webhook", after_cancel=True, fails_as=WebhookFailed),
        ),
        publishes=(SegmentDelivered, JobCompleted, WebhookRequested, WebhookFailed),
        work="write",
        delivery="write",
        note="delivery, webhooks",
    ),
}
SERVICES: tuple[str, ...] = tuple(FLOW)


# --- names ------------------------------------------------------------------------------------------------------------


def stream_name(prefix: str) -> str:
    """The one stream that holds every event of a subject prefix."""
    return prefix.upper().replace("-", "_").replace(".", "_")


def durable_name(service: str, event: type[Event]) -> str:
    """The durable consumer a service reads one subject through."""
    return f"{service}-{event.subject.replace('.', '-')}"


def kv_bucket(prefix: str, name: str) -> str:
    """A KV bucket's JetStream name (its stream is ``KV_`` + this)."""
    return f"{stream_name(prefix)}_{name}"


def dead_letter_subject(prefix: str, service: str) -> str:
    return f"{prefix}.dead.{service}"


def subject(prefix: str, event: type[Event] | Event) -> str:
    """The subject an event is published on; a staged failure carries its stage (``segment.failed.qa``)."""
    base = f"{prefix}.{event.subject}"
    if isinstance(event, STAGED_FAILURES):
        return f"{base}.{event.stage}"  # type: ignore[attr-defined]
    return base


def event_subject(subject: str) -> str:
    """The event subject of a published subject without its prefix: ``segment.failed.qa`` -> ``segment.failed``."""
    base, _, _ = subject.rpartition(".")
    return base if base in {e.subject for e in STAGED_FAILURES} else subject


def filter_subject(prefix: str, event: type[Event]) -> str:
    """What a consumer of ``event`` filters on: every stage's failures for a staged failure."""
    return f"{prefix}.{event.subject}.*" if event in STAGED_FAILURES else f"{prefix}.{event.subject}"


# --- what each service may do -----------------------------------------------------------------------------------------


def failures(service: str) -> tuple[type[Event], ...]:
    """The failure events the runner may publish for this service: those of its non-observer routes."""
    return tuple(dict.fromkeys(f for row in FLOW[service].consumes if (f := row.failure()) is not None))


def publish_subjects(service: str, prefix: str) -> list[str]:
    """Every event subject a service may publish: its own events and its own stages' failures."""
    subjects = [f"{prefix}.{e.subject}" for e in FLOW[service].publishes]
    for failure in failures(service):
        subjects.append(f"{prefix}.{failure.subject}.{service}" if failure in STAGED_FAILURES else f"{prefix}.{failure.subject}")
    return list(dict.fromkeys(subjects))


# --- routes -----------------------------------------------------------------------------------------------------------


def routes(
    service: str,
    handlers: Mapping[str, Callable[..., Any]],
    options: Mapping[type[Event], Mapping[str, Any]] | None = None,
    omit: tuple[type[Event], ...] = (),
) -> list[Any]:
    """The service's routes, one per row of its table: the handler by name, the table's flags, runtime ``options``.

    ``handlers`` must name exactly the table's handlers (a handler missing or extra is a bug, said at build
    time); ``options`` adds what settings decide (concurrency, time limits, backoff); ``omit`` leaves out rows
    that settings switch off.
    """
    from reelforge_shared.runner import Route

    rows = FLOW[service].consumes
    wanted = {row.handler for row in rows}
    if set(handlers) != wanted:
        raise ValueError(f"{service}: handlers {sorted(handlers)} do not match the flow table's {sorted(wanted)}")
    options = options or {}
    if unknown := [e.__name__ for e in options if e not in {row.event for row in rows}]:
        raise ValueError(f"{service}: options for events it does not consume: {unknown}")
    return [
        Route(
            row.event,
            handlers[row.handler],
            observer=row.observer,
            after_cancel=row.after_cancel,
            **dict(options.get(row.event, {})),
        )
        for row in rows
        if row.event not in omit
    ]


# --- the README's diagram ---------------------------------------------------------------------------------------------


def mermaid() -> str:
    """The flow as a Mermaid flowchart: an edge per (publisher, event, consumer); what observers read, dotted."""
    lines = ["flowchart LR", "  client([client]) -- POST /v1/jobs --> gateway"]
    lines += [f"  {name}[{name}: {flow.note}]" for name, flow in FLOW.items()]
    for publisher, flow in FLOW.items():
        for event in dict.fromkeys((*flow.publishes, *failures(publisher))):
            for consumer, other in FLOW.items():
                for row in other.consumes:
                    if row.event is event and not row.observer:
                        lines.append(f"  {publisher} -- {event.subject} --> {consumer}")
    for consumer, other in FLOW.items():
        observed = [row.event.subject for row in other.consumes if row.observer]
        if observed:
            label = ", ".join(observed) if len(observed) <= 4 else f"every job event ({len(observed)} subjects)"
            lines.append(f"  bus[(JetStream)] -. {label} .-> {consumer}")
    return "\n".join(dict.fromkeys(lines)) + "\n"
