from reelforge_shared.assets import open_registry
from reelforge_shared.events import FilmChecked, SegmentChecked
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, open_store
from reelforge_uploader.config import UploaderSettings
from reelforge_uploader.delivery import Delivery, GitLabUploads
from reelforge_uploader.handler import UploaderDeps, handle_checked, handle_film

Settings = UploaderSettings


def build(settings: UploaderSettings) -> Service:
    store = open_store(settings)
    gitlab_parts = (settings.gitlab_url, settings.gitlab_project, settings.gitlab_token)
    if any(gitlab_parts) and not all(gitlab_parts):
        raise ValueError("REELFORGE_GITLAB_URL, REELFORGE_GITLAB_PROJECT and REELFORGE_GITLAB_TOKEN must be set together")
    gitlab = None
    if all(gitlab_parts):
        gitlab = GitLabUploads(settings.gitlab_url, settings.gitlab_project, settings.gitlab_token.get_secret_value())
    database = settings.assets_database_url.get_secret_value() if settings.assets_database_url else None
    delivery = Delivery(
        store, settings.work_bucket, settings.delivery_bucket, open_registry(database, store, settings.work_bucket), gitlab,
        settings.gitlab_threshold_bytes, settings.gitlab_split_bytes, settings.head_timeout_s,
    )
    deps = UploaderDeps(store, settings.work_bucket, settings.delivery_bucket, delivery)
    return Service("uploader", settings, [Route(SegmentChecked, handle_checked), Route(FilmChecked, handle_film)], deps)
