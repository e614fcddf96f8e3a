from reelforge_generator.config import GeneratorSettings
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.events import SegmentRequested
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, open_store

Settings = GeneratorSettings


def build(settings: GeneratorSettings) -> Service:
    renderer = FrameRenderer(settings)
    deps = GeneratorDeps(store=open_store(settings), bucket=settings.work_bucket, renderer=renderer)
    return Service("generator", settings, [Route(SegmentRequested, handle)], deps, setup=renderer.setup)
