"""Cast sheets: a reference image rendered once for each character and location that has none (issue 18 point 6).

A segment's spec lists the sheet images it is conditioned on (``spec.cast_sheet``, made by the submitter from
``style.cast_sheet``, on by default). The generator renders each one the first time a segment needs it,
synchronously before that segment, as a shot of its own: keyed by :func:`reelforge_shared.shots.sheet_key` (the
character's description, seed, the output size and this worker's profile) and kept in the owner's shot store
(``Keys.cast_sheet``), so every later segment and job of that owner reuses it. Each job gets a copy under its own
folder (``Keys.job_cast_sheet``), the only place a render may read a reference from; the segment takes it as a
reference image after the storyboard's own (image-to-video: its start image when the cast brought none).

Concurrent segments of one worker wait on one lock per sheet; two workers rendering the same sheet at once both
write the same image (the same key renders the same pixels), so the store holds one either way.

A model that takes no reference (a per-frame model without an IP-Adapter) renders no sheet: it would change nothing;
image-to-video starts from one image, so only the first sheet is drawn, and none when the segment brings its own (a
character's reference image, or the frame it continues from).
"""

from __future__ import annotations

import threading
from collections import defaultdict

import structlog

from reelforge_generator.metrics import CAST_SHEETS_RENDERED
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.events import RenderSpec
from reelforge_shared.shots import RenderProfile, ShotPlan, owner_folder, sheet_key, sheet_spec
from reelforge_shared.storage import Keys, ObjectStore

log = structlog.get_logger("reelforge.generator")

_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks[key]


def sheet_references(
    store: ObjectStore, bucket: str, renderer: FrameRenderer, profile: RenderProfile, job_id: str, spec: RenderSpec
) -> list[dict]:
    """Each of ``spec``'s cast sheet images in the job's folder (rendered if its owner has none yet), with its name,
    kind and key; none for a model that takes no reference."""
    if not spec.cast_sheet or not renderer.takes_reference:
        return []
    plan_key = Keys.shot_plan(job_id)
    owner = ShotPlan.model_validate(store.get_json(bucket, plan_key)).owner if store.exists(bucket, plan_key) else None
    wanted = list(spec.cast_sheet)
    if (used := renderer.references_used) is not None:  # image-to-video: a sheet after its start image would be unused
        given = len(spec.reference_images) + (spec.start_frame is not None)
        wanted = wanted[: max(0, used - given)]
    out = []
    for sheet in wanted:
        key = sheet_key(spec, sheet, profile)
        kept, image = Keys.cast_sheet(owner_folder(owner), key), Keys.job_cast_sheet(job_id, key)
        with _lock(kept):
            if not store.exists(bucket, kept):
                png = renderer.render_sheet(sheet_spec(spec, sheet), renderer.plan(spec))
                store.put_bytes(bucket, kept, png, "image/png")
                CAST_SHEETS_RENDERED.labels(profile.model or renderer.settings.model).inc()
                log.info("generator.cast_sheet_rendered", job_id=job_id, kind=sheet.kind, name=sheet.name, key=key)
            if not store.exists(bucket, image):
                store.copy(bucket, kept, bucket, image)
        out.append({"kind": sheet.kind, "name": sheet.name, "key": key, "image": image})
    return out
