from reelforge_shared.assets import open_registry
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import (
    Event,
    FilmChecked,
    JobCancelled,
    JobCompleted,
    JobFailed,
    SegmentChecked,
    SegmentDelivered,
    WebhookRequested,
)
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, open_store
from reelforge_shared.webhooks import refuse_private, retry_schedule
from reelforge_uploader import webhooks
from reelforge_uploader.config import UploaderSettings
from reelforge_uploader.delivery import Delivery, GitLabUploads
from reelforge_uploader.handler import UploaderDeps, handle_checked, handle_film

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
        store,
        settings.work_bucket,
        settings.delivery_bucket,
        open_registry(database, store, settings.work_bucket),
        gitlab,
        settings.gitlab_threshold_bytes,
        settings.gitlab_split_bytes,
        settings.head_timeout_s,
    )
    deps = UploaderDeps(store, settings.work_bucket, settings.delivery_bucket, delivery, _webhook_deps(settings))
    routes = [Route(SegmentChecked, handle_checked), Route(FilmChecked, handle_film)]
    # Notifications go out for cancelled jobs too (job.cancelled is one), so these routes are not skipped for them.
    # The fan-out only reads and publishes: an observer, so a failure of it can never mark the job failed.
    routes += [Route(e, fan_out, observer=True) for e in webhook_events(settings)]
    backoff = retry_schedule(settings.webhook_retry_first_s, settings.webhook_retry_span_s)
    routes.append(Route(WebhookRequested, send_webhook, concurrency=4, backoff=backoff, after_cancel=True))
    service = Service("uploader", settings, routes, deps)

    async def job_webhook(job_id: str) -> str | None:  # the job's own webhook_url, from the job ledger
        record = await service.ledger.get(job_id) if service.ledger is not None else None
        return record.webhook_url if record is not None else None

    deps.webhooks.job_webhook = job_webhook
    return service


def webhook_events(settings: UploaderSettings) -> list[type[Event]]:
    events: list[type[Event]] = [JobCompleted, JobFailed, JobCancelled]
    if settings.webhook_segment_events:
        events.append(SegmentDelivered)
    return events


def _webhook_deps(settings: UploaderSettings) -> webhooks.WebhookDeps:
    for url in settings.webhook_targets:
        try:
            refuse_private(url, settings.webhook_allow_private, field="REELFORGE_WEBHOOK_URLS")
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    return webhooks.WebhookDeps(secret, settings.webhook_targets, settings.webhook_allow_private, settings.webhook_timeout_s)


async def fan_out(event: Event, deps: UploaderDeps) -> list[Event]:
    return await webhooks.fan_out(event, deps.webhooks)


async def send_webhook(event: WebhookRequested, deps: UploaderDeps) -> list[Event]:
    return await webhooks.send(event, deps.webhooks)
