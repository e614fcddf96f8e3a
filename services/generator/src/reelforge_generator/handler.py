"""Generator handler: SegmentRequested -> frames in S3 -> SegmentGenerated."""

from __future__ import annotations

from dataclasses import dataclass

from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.events import Event, SegmentGenerated, SegmentRequested
from reelforge_shared.storage import Keys, ObjectStore


@dataclass(slots=True)
class GeneratorDeps:
    store: ObjectStore
    bucket: str
    renderer: FrameRenderer


def handle(event: SegmentRequested, deps: GeneratorDeps) -> list[Event]:
    """Render the frames not yet stored (a redelivered or restarted segment resumes), then announce them."""
    job, n, spec = event.job_id, event.index, event.spec
    stored = set(deps.store.list_keys(deps.bucket, Keys.frames(job, n)))
    missing = [i for i in range(spec.frames) if Keys.frame(job, n, i) not in stored]
    if deps.renderer.model is None or (event.model and event.model != deps.renderer.model.name):
        deps.renderer.setup(event.model)  # a worker keeps its model; only a different request reloads
    for i, png in deps.renderer.render(spec, missing):
        deps.store.put_bytes(deps.bucket, Keys.frame(job, n, i), png, "image/png")
    return [
        SegmentGenerated(
            job_id=job, index=n, segment_id=event.segment_id, attempt=event.attempt,
            frames_prefix=Keys.frames(job, n), frame_count=spec.frames, fps=spec.fps,
            width=spec.width, height=spec.height, model=deps.renderer.model,
        )
    ]
