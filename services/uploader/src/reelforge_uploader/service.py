from collections.abc import Awaitable, Callable

from reelforge_shared.assets import open_registry
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import Event, SegmentDelivered, WebhookRequested
from reelforge_shared.flow import routes
from reelforge_shared.service import Service, open_store
from reelforge_shared.webhooks import refuse_private, retry_schedule
from reelforge_uploader import webhooks
from reelforge_uploader.config import UploaderSettings
from reelforge_uploader.delivery import Delivery, GitLabUploads
from reelforge_uploader.handler import (
    UploaderDeps,
    handle_checked,
    handle_deliverables_stored,
    handle_film,
    handle_film_encoded,
    handle_selected,
)

Settings = UploaderSettings


def build(settings: UploaderSettings) -> Service:
    store = open_store(settings)
    url, project, token = settings.gitlab_url, settings.gitlab_project, settings.gitlab_token
    if any((url, project, token)) and not all((url, project, token)):
        raise ValueError("REELFORGE_GITLAB_URL, REELFORGE_GITLAB_PROJECT and REELFORGE_GITLAB_TOKEN must be set together")
    gitlab = None
    if url and project and token:
        gitlab = GitLabUploads(url, project, token.get_secret_value())
    database = settings.assets_database_url.get_secret_value() if settings.assets_database_url else None
    delivery = Delivery(
        store=store,
        work_bucket=settings.work_bucket,
        delivery_bucket=settings.delivery_bucket,
        registry=open_registry(database, store, settings.work_bucket),
        gitlab=gitlab,
        gitlab_threshold_bytes=settings.gitlab_threshold_bytes,
        split_bytes=settings.gitlab_split_bytes,
        head_timeout_s=settings.head_timeout_s,
    )

    async def job_webhook(job_id: str) -> str | None:  # the job's own webhook_url, from the job ledger of the service below
        record = await service.ledger.head(job_id) if service.ledger is not None else None
        return record.webhook_url if record is not None else None

    deps = UploaderDeps(
        store=store,
        work_bucket=settings.work_bucket,
        delivery_bucket=settings.delivery_bucket,
        delivery=delivery,
        webhooks=_webhook_deps(settings, job_webhook),
        cancelled=lambda job: service.cancel_check(job, fresh=True),  # the job store, bypassing its cache
        deliverable_wait_s=settings.uploader_deliverable_wait_s,
    )
    # Notifications go out for cancelled jobs too (job.cancelled is one): the flow table makes the fan-out an
    # observer (its failure never marks a job failed) and sends webhooks after a cancel.
    backoff = retry_schedule(settings.webhook_retry_first_s, settings.webhook_retry_span_s)
    served = routes(
        "uploader",
        {
            "handle_checked": handle_checked,
            "handle_selected": handle_selected,
            "handle_film_encoded": handle_film_encoded,
            "handle_deliverables_stored": handle_deliverables_stored,
            "handle_film": handle_film,
            "fan_out": fan_out,
            "send_webhook": send_webhook,
        },
        {WebhookRequested: {"concurrency": 4, "backoff": backoff}},
        omit=() if settings.webhook_segment_events else (SegmentDelivered,),
    )
    service = Service("uploader", settings, served, deps)
    service.closers.append(deps.webhooks.egress.aclose)
    return service


def _webhook_deps(
    settings: UploaderSettings, job_webhook: Callable[[str], Awaitable[str | None]] | None = None
) -> webhooks.WebhookDeps:
    for url in settings.webhook_targets:
        try:
            refuse_private(url, settings.webhook_allow_private, field="REELFORGE_WEBHOOK_URLS")
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    return webhooks.WebhookDeps(
        secret=secret,
        urls=settings.webhook_targets,
        egress=webhooks.webhook_egress(settings.webhook_allow_private, settings.webhook_timeout_s),
        job_webhook=job_webhook,
    )


async def fan_out(event: Event, deps: UploaderDeps) -> list[Event]:
    return await webhooks.fan_out(event, deps.webhooks)


async def send_webhook(event: WebhookRequested, deps: UploaderDeps) -> list[Event]:
    return await webhooks.send(event, deps.webhooks)
