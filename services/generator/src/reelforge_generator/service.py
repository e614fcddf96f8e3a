from typing import Any

from reelforge_generator.config import GeneratorSettings
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.handler import setup as load
from reelforge_generator.metrics import VRAM_LIMIT
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import Event, SegmentRequested
from reelforge_shared.flow import routes
from reelforge_shared.jobs import CancelCheck
from reelforge_shared.service import Service, open_store

Settings = GeneratorSettings


def build(settings: GeneratorSettings) -> Service:
    renderer = FrameRenderer(settings)
    VRAM_LIMIT.set(settings.vram_limit_gb * 1024**3)
    cancel_check = CancelCheck()  # the generator asks it between batches; the runner binds it to the ledger
    deps = GeneratorDeps(store=open_store(settings), bucket=settings.work_bucket, renderer=renderer, cancelled=cancel_check)
    # Segments are taken from the queue a few at a time and run grouped by model: a worker keeps one model
    # loaded, so a queue alternating between two models would otherwise reload on every segment.
    options: dict[type[Event], dict[str, Any]] = {
        SegmentRequested: {
            "prefetch": settings.queue_window,
            "group_by": lambda e: e.model or "",
            "timeout": lambda e: settings.work_timeout_s + e.spec.frames * settings.generator_timeout_per_frame_s,
        }
    }
    served = routes("generator", {"handle": handle}, options)

    def setup() -> None:
        """Load the default model; a refused or missing one names the setting that chose it."""
        try:
            load(deps)
        except PermanentError as exc:
            if "REELFORGE_" in str(exc):
                raise
            raise PermanentError(f"{exc} (the model is REELFORGE_MODEL={settings.model!r})") from exc

    return Service("generator", settings, served, deps, setup=setup, cancel_check=cancel_check)
