from reelforge_qa.config import QaSettings
from reelforge_qa.handler import QaDeps, handle
from reelforge_qa.scores import Thresholds
from reelforge_shared.events import SegmentEncoded
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, open_store

Settings = QaSettings


def build(settings: QaSettings) -> Service:
    thresholds = Thresholds(settings.sharpness_threshold, settings.exposure_threshold, settings.noise_threshold)
    deps = QaDeps(store=open_store(settings), bucket=settings.work_bucket, thresholds=thresholds, sample_frames=settings.sample_frames)
    return Service("qa", settings, [Route(SegmentEncoded, handle)], deps)
