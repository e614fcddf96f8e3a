"""Generator handler: SegmentRequested -> frames in S3 -> SegmentGenerated.

Resume: only frames not yet stored are rendered, so a redelivered or restarted segment finishes
where the last attempt stopped. Out of memory: the segment is retried at a smaller batch, then at
a lower resolution (:mod:`reelforge_generator.fallback`); a lower resolution re-renders the whole
segment so its frames keep one size, and is recorded in ``render.json`` beside the frames so that
a later delivery renders the rest at the same size and reports the same degradation.

References: reference images are objects under the job's own folder (an upload or a fetched reference
the gateway stored as the job's input, or a continuity re-render's frame, ``Keys.continuity_reference``),
downloaded for the render; a path, a URL or another job's key is refused like a missing key.

Cancel: between batches the handler asks the job ledger (``deps.cancelled``, cached and cheap) and
stops with :class:`Cancelled` once the job is cancelled; the frames stored so far stay.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog
import torch

from reelforge_generator.cast import sheet_references
from reelforge_generator.fallback import RenderPlan, after_out_of_memory
from reelforge_generator.metrics import DEGRADATIONS, SUPERSEDED
from reelforge_generator.renderer import FrameRenderer, RunReport
from reelforge_generator.sound_video import wav_bytes
from reelforge_shared.chain import release, superseded
from reelforge_shared.errors import Cancelled, TransientError
from reelforge_shared.events import Event, RenderSpec, SegmentGenerated, SegmentRequested
from reelforge_shared.shots import RenderProfile, reference_hashes, save_profile, shot_key
from reelforge_shared.storage import Keys, ObjectStore, fetch_job_reference

log = structlog.get_logger("reelforge.generator")


@dataclass(slots=True)
class GeneratorDeps:
    store: ObjectStore
    bucket: str
    renderer: FrameRenderer
    cancelled: Callable[[str], bool] = lambda _job: False  # the ledger's CancelCheck in a service


class Uploads:
    """Frames go to S3 on two threads while the renderer works on the next batch."""

    def __init__(self, store: ObjectStore, bucket: str) -> None:
        self.store, self.bucket = store, bucket
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="upload")
        self.pending: list[tuple[int, Future]] = []

    def put(self, index: int, key: str, png: bytes) -> None:
        self.pending.append((index, self.pool.submit(self.store.put_bytes, self.bucket, key, png, "image/png")))

    def finish(self) -> set[int]:
        """Wait for every upload; the frames stored (the first failure raises after all have settled)."""
        self.pool.shutdown(wait=True)
        for _, future in self.pending:
            future.result()
        return {index for index, _ in self.pending}


def handle(event: SegmentRequested, deps: GeneratorDeps) -> list[Event]:
    """Render the frames not yet stored (a redelivered or restarted segment resumes), then announce them.

    A request whose shot is reused (``reused_from``) is not rendered: the submitter copied its frames and
    published its ``segment.generated`` already. Nor is a continued shot's attempt when a later one of it is asked
    for already (:func:`reelforge_shared.chain.superseded`): that one renders from the newest last frame instead.
    """
    if event.reused_from is not None:
        return []
    if (later := superseded(deps.store, deps.bucket, event)) is not None:
        SUPERSEDED.inc()
        log.info("generator.superseded", job_id=event.job_id, index=event.index, attempt=event.attempt, later=later)
        return []
    renderer = deps.renderer
    wanted = event.model or renderer.settings.model  # the segment's (or job's) model, else the worker's own
    if renderer.model is None or wanted != renderer.model.name:
        setup(deps, event.model)  # a worker keeps its model; only a different one reloads
    # The cast sheet's images (rendered now if this owner has none yet) are references after the storyboard's own.
    sheets = sheet_references(deps.store, deps.bucket, renderer, _profile(deps, event), event.job_id, event.spec)
    spec = event.spec.model_copy(update={"reference_images": [*event.spec.reference_images, *(s["image"] for s in sheets)]})
    spec = renderer.fit_handles(spec)  # with handles: a total that keeps the model's frame-count rule
    with tempfile.TemporaryDirectory(prefix="reelforge-references-") as tmp:
        events = _handle(event, deps, stored_references(deps.store, deps.bucket, event.job_id, spec, Path(tmp)), sheets)
    # The segment that continues from this one's last frame can be requested now (reelforge_shared.chain).
    return events + [e for g in events if isinstance(g, SegmentGenerated) for e in release(deps.store, deps.bucket, g)]


def setup(deps: GeneratorDeps, model: str | None = None) -> None:
    """Load ``model`` (else the worker's) and publish its render profile, from which submitters compute shot keys."""
    deps.renderer.setup(model)
    assert deps.renderer.profile is not None  # noqa: S101 - set by setup
    save_profile(deps.store, deps.bucket, deps.renderer.profile)
    if model is None:  # a segment that names no model renders with this one: its profile under the default's name too
        save_profile(deps.store, deps.bucket, deps.renderer.profile.model_copy(update={"model": ""}))


def _profile(deps: GeneratorDeps, event: SegmentRequested) -> RenderProfile:
    """This worker's live profile for ``event`` (under the default's name when the segment names no model)."""
    profile = deps.renderer.profile
    assert profile is not None  # noqa: S101 - a model is loaded before any render
    return profile.model_copy(update={"model": ""}) if event.model is None else profile


def segment_shot_key(deps: GeneratorDeps, event: SegmentRequested) -> str:
    """The shot key of what this worker renders for ``event`` (its live profile; the request's may be stale)."""
    profile = _profile(deps, event)
    key = shot_key(event.spec, profile, reference_hashes(event.spec, deps.store, deps.bucket))
    if event.shot_key is not None and event.shot_key != key:
        log.warning("generator.shot_key_changed", job_id=event.job_id, index=event.index, requested=event.shot_key, rendered=key)
    return key


def stored_references(store: ObjectStore, bucket: str, job: str, spec: RenderSpec, folder: Path) -> RenderSpec:
    """``spec`` with its reference images downloaded into ``folder``: only objects under the job's own folder.

    A URL, a path on this machine or another job's key is refused like a missing key (one message): the
    generator, which runs model code, opens nothing a storyboard names. The frame a segment continues from
    (``start_frame``) comes first: image-to-video models start from the first reference, per-frame models
    weigh it with the cast's through the IP-Adapter.
    """
    local = [
        str(fetch_job_reference(store, bucket, job, f"reference_images[{i}]", ref, folder / f"{i}{Path(ref).suffix[:8]}"))
        for i, ref in enumerate(spec.reference_images)
    ]
    if spec.start_frame is not None:
        key = spec.start_frame.frame_key
        local.insert(0, str(fetch_job_reference(store, bucket, job, "start_frame", key, folder / "start.png")))
    return spec.model_copy(update={"reference_images": local}) if local else spec


def _handle(event: SegmentRequested, deps: GeneratorDeps, spec: RenderSpec, sheets: list[dict]) -> list[Event]:
    job, n, a, t, renderer = event.job_id, event.index, event.attempt, event.take, deps.renderer
    key = segment_shot_key(deps, event)
    state_key = Keys.render_state(job, n, a, t)  # beside frames/, not in it: the encoder reads all of frames/
    state = deps.store.get_json(deps.bucket, state_key) if deps.store.exists(deps.bucket, state_key) else {}
    full = renderer.plan(spec)
    plan = RenderPlan(state["width"], state["height"], full.batch) if state else full
    notes: list[str] = list(state.get("degraded", []))
    stored = set(deps.store.list_keys(deps.bucket, Keys.frames(job, n, a, t)))
    todo = [i for i in range(spec.frames) if Keys.frame(job, n, i, a, t) not in stored]
    audio_key = Keys.segment_audio(job, n, a, t)
    makes_sound = renderer.makes_sound
    # A sound model makes the track with the frames, clip by clip: without a stored track, every clip again (a
    # resume that finds the track renders only the missing frames' clips and leaves the track as it is).
    needs_sound = makes_sound and not deps.store.exists(deps.bucket, audio_key)
    if needs_sound:
        todo = list(range(spec.frames))
    sound: dict[int, torch.Tensor] = {}  # each rendered clip's waveform by its first frame
    sample_rate = 0
    while True:  # until a render finishes; with nothing missing it finishes at once
        run = RunReport(plan)  # this render's own, not a field of the renderer that every segment shares
        done, out_of_memory = _render_into_store(deps, job, n, (a, t), spec, todo, plan, run)
        if run.sound:
            sound |= run.sound
            sample_rate = run.sample_rate or sample_rate
        if not out_of_memory:
            notes += run.notes
            break
        step = after_out_of_memory(plan, full.size, renderer.size_multiple)
        if step is None:
            raise TransientError(f"out of memory at batch 1 and {plan.width}x{plan.height}; another worker may have more")
        smaller, note = step
        DEGRADATIONS.labels("batch" if smaller.size == plan.size else "resolution").inc()
        log.warning("generator.out_of_memory", job_id=job, index=n, detail=note)
        notes.append(note)
        if smaller.size != plan.size:  # one size per segment: everything again, at the new size
            # first, so no old-size frame (nor its sound) outlives the record
            for key in deps.store.list_keys(deps.bucket, Keys.frames(job, n, a, t)) + ([audio_key] if makes_sound else []):
                deps.store.remove(deps.bucket, key)
            deps.store.put_json(deps.bucket, state_key, {"width": smaller.width, "height": smaller.height, "degraded": notes})
            todo = list(range(spec.frames))
            sound.clear()
            needs_sound = makes_sound
        else:
            todo = [i for i in todo if i not in done]
        plan = smaller
    if needs_sound and sound:  # every clip's, in frame order: as long as the segment
        track = torch.cat([sound[first] for first in sorted(sound)], dim=-1)
        deps.store.put_bytes(deps.bucket, audio_key, wav_bytes(track, sample_rate), "audio/wav")
    shot = {"shot_key": key, "frame_count": spec.frames, "fps": spec.fps, "width": spec.width, "height": spec.height}
    shot["start_frame"] = spec.start_frame.model_dump() if spec.start_frame is not None else None  # what a retry starts from
    shot["cast_sheet"] = sheets  # the sheet images it was conditioned on (report, film QA)
    record = _generation_record(
        deps, run, Keys.segment_generation(job, n, a, t), "; ".join(notes) or None, shot | {"seed": spec.seed}
    )
    log.info("generator.segment_rendered", job_id=job, index=n, attempt=a, **{k: v for k, v in record.items() if k != "prompt"})
    return [
        SegmentGenerated.follow(
            event,
            frames_prefix=Keys.frames(job, n, a, t),
            frame_count=spec.frames,
            fps=spec.fps,
            width=spec.width,
            height=spec.height,
            model=renderer.model,
            audio_key=audio_key if makes_sound else None,
            shot_key=key,
            **{k: record.get(k) for k in REPORTED},
        )
    ]


REPORTED = ("degraded", "prompt", "prompt_tokens", "prompt_tokens_dropped", "render_s", "s_per_frame", "peak_vram_bytes")


def _generation_record(deps: GeneratorDeps, run: RunReport, key: str, degraded: str | None, facts: dict) -> dict:
    """The prompt as the model got it, its token counts and the render figures, stored beside the frames.

    A redelivery that found every frame stored rendered nothing: it reports the first run's record.
    """
    model = deps.renderer.model
    assert model is not None  # noqa: S101 - loaded by the render that just ran
    if run.prompt is None and deps.store.exists(deps.bucket, key):
        return deps.store.get_json(deps.bucket, key)
    record = (run.prompt.as_dict() if run.prompt else {}) | run.figures() | {"degraded": degraded}
    deps.store.put_json(deps.bucket, key, record | {"model": model.name} | facts)
    return record


def _render_into_store(
    deps: GeneratorDeps,
    job: str,
    n: int,
    slot: tuple[int, int],
    spec: RenderSpec,
    frames: list[int],
    plan: RenderPlan,
    report: RunReport,
) -> tuple[set[int], bool]:
    """Render ``frames`` into the store (``slot``: attempt and take): the frames stored, and whether the device ran out of
    memory."""
    uploads = Uploads(deps.store, deps.bucket)
    try:
        for count, (i, png) in enumerate(deps.renderer.render(spec, frames, plan, report), start=1):
            uploads.put(i, Keys.frame(job, n, i, *slot), png)
            if count % plan.batch == 0 and count < len(frames) and deps.cancelled(job):  # between batches
                uploads.finish()
                raise Cancelled(f"job {job} cancelled after {count} of {len(frames)} frames of segment {n}")
    except torch.OutOfMemoryError:
        if deps.renderer.device.startswith("cuda"):
            torch.cuda.empty_cache()  # what the failed batch held is garbage now
        return uploads.finish(), True
    except BaseException:
        uploads.pool.shutdown(wait=True)
        raise
    return uploads.finish(), False
