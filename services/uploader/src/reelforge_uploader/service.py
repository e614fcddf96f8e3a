from reelforge_shared.events import FilmChecked, SegmentChecked
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, open_store
from reelforge_shared.settings import CommonSettings
from reelforge_uploader.handler import UploaderDeps, handle_checked, handle_film

Settings = CommonSettings


def build(settings: CommonSettings) -> Service:
    deps = UploaderDeps(store=open_store(settings), work_bucket=settings.work_bucket, delivery_bucket=settings.delivery_bucket)
    return Service("uploader", settings, [Route(SegmentChecked, handle_checked), Route(FilmChecked, handle_film)], deps)
