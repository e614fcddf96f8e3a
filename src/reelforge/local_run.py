"""`reelforge run`: submit one storyboard to a local stack, show progress, fetch the film and report.

Progress comes from the job ledger (the same record the gateway serves). The embedded servers keep
their data in ``OUT/.reelforge/state`` and the job id in ``OUT/.reelforge/job.json``: a killed run
is resumed by running the same command again (same storyboard and model), and the work already
stored and acknowledged is not done twice. Another storyboard in the same folder is a new job that
reuses the unchanged shots of the earlier runs there.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from reelforge.stack import Stack, local_stack
from reelforge_gateway.config import GatewaySettings
from reelforge_gateway.submit import new_job_id, submit_job
from reelforge_gateway.timeline.sources import OUT_STORYBOARD, out_attempt_file
from reelforge_shared.bus import Bus
from reelforge_shared.errors import InvalidInput
from reelforge_shared.jobs import LOCAL_OWNER, JobRecord, Ledger
from reelforge_shared.logging import configure_logging
from reelforge_shared.references import ReferenceLimits, check_audio, check_image, media_fields, stored_name
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, parse_storyboard

PROGRESS_STAGES = ("generated", "encoded", "checked", "delivered")
RUN_DIR = ".reelforge"


def run_state(out: Path, board: Storyboard, model: str | None) -> tuple[Path, str, bool]:
    """(state directory, job id, resumed): the same storyboard and model in ``out`` resume its job.

    Another storyboard (or model) is a new job on the same servers' data: the shots of earlier runs in
    ``out`` that are unchanged are reused, not rendered again (:mod:`reelforge_shared.shots`).
    """
    run_dir = out / RUN_DIR
    job_file = run_dir / "job.json"
    digest = hashlib.sha256(json.dumps([board.model_dump(mode="json"), model], sort_keys=True).encode()).hexdigest()
    if job_file.exists():
        previous = json.loads(job_file.read_text())
        if previous.get("storyboard_sha256") == digest:
            return run_dir / "state", previous["job_id"], True
    run_dir.mkdir(parents=True, exist_ok=True)
    job_id = new_job_id()
    job_file.write_text(json.dumps({"job_id": job_id, "storyboard_sha256": digest}))
    return run_dir / "state", job_id, False


async def run_storyboard(
    board: Storyboard,
    out: Path,
    *,
    model: str | None = None,
    console: Console | None = None,
    folder: Path | None = None,
    **overrides: Any,
) -> bool:
    """Render ``board`` into ``out``; True when every segment and the film were delivered.

    ``folder`` is the storyboard's own folder: the only place its media files (logo, music, audio,
    reference images) may come from; they are checked and stored as the job's inputs before submitting.
    ``overrides``: settings of the stack (``local_stack``), e.g. servers to use instead of embedded ones.
    """
    console = console or Console(stderr=True)
    state, job_id, resumed = run_state(out, board, model)
    log_file = (out / "reelforge.log").open("a")
    configure_logging("INFO", json=True, stream=log_file)  # the terminal belongs to the progress bars
    verb = "resuming" if resumed else "starting"
    console.print(f"[bold]{board.title}[/bold]: {len(board.segments)} segments, {board.duration_s:.1f} s; {verb} services ...")
    try:
        async with local_stack(state, **overrides) as stack:
            record = await _render(stack, board, job_id, model, console, resumed, folder)
            return _collect(stack, board, record, out, console)
    finally:
        log_file.close()


async def _render(
    stack: Stack, board: Storyboard, job_id: str, model: str | None, console: Console, resumed: bool, folder: Path | None
) -> JobRecord:
    settings = stack.settings
    bus = await Bus.connect(settings, name="reelforge-cli")
    store = ObjectStore.from_settings(settings)
    try:
        board = await asyncio.to_thread(stage_local_media, board, folder, store=store, bucket=settings.work_bucket, job_id=job_id)
        ledger = await Ledger.open(bus)
        # Submitting again is harmless: every publish carries its Nats-Msg-Id, so a resumed run adds nothing new.
        reuse = GatewaySettings().shot_reuse  # REELFORGE_SHOT_REUSE=false: render every segment
        await submit_job(
            board, bus=bus, store=store, bucket=settings.work_bucket, job_id=job_id, model=model, owner=LOCAL_OWNER, reuse=reuse
        )
        console.print(f"job [bold]{job_id}[/bold] {'resumed' if resumed else 'submitted'}")
        columns = (
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        record = JobRecord(job_id=job_id, segment_count=len(board.segments))
        with Progress(*columns, console=console) as progress:
            bars = {stage: progress.add_task(stage, total=len(board.segments)) for stage in PROGRESS_STAGES}
            film = progress.add_task("film", total=1)
            async for update in ledger.watch(job_id, heartbeat_s=1.0):
                stack.check_alive()
                if update is None:
                    continue
                record = update
                for stage, bar in bars.items():
                    progress.update(bar, completed=record.count_reached(stage))
                progress.update(film, completed=int(record.status in {"film_checking", "delivering", "completed"}))
                if record.terminal:
                    break
        return await ledger.get(job_id) or record
    finally:
        await bus.close()


def local_media(board: Storyboard, folder: Path | None) -> dict[str, tuple[Path, str]]:
    """Local mode: the media files ``board`` names (field -> file, checked type), only under the storyboard's ``folder``.

    A path outside the folder, a link out of it and a missing file get one message; a file that is not
    the image or audio its field wants is invalid input too. URLs and job keys are left to submission.
    """
    base = folder.resolve() if folder is not None else None
    found = {}
    for holder, key, field, kind in media_fields(board.model_dump(mode="json")):
        ref = holder.get(key)
        if not ref or "://" in ref or ref.startswith(Keys.job("")):
            continue
        path = (base / ref).resolve() if base is not None else None
        if path is None or base is None or not path.is_relative_to(base) or not path.is_file():
            raise InvalidInput(f"{field}: {ref!r} is not a file in the storyboard's folder ({base})")
        limits, data = ReferenceLimits(), path.read_bytes()
        if len(data) > limits.max_bytes:
            raise InvalidInput(f"{field}: {len(data)} bytes, over the {limits.max_bytes}-byte cap")
        check = check_image(data, field, limits.max_pixels) if kind == "image" else check_audio(data, field, limits.max_seconds)
        found[field] = (path, check)
    return found


def stage_local_media(board: Storyboard, folder: Path | None, *, store: ObjectStore, bucket: str, job_id: str) -> Storyboard:
    """``board`` with its local media files (:func:`local_media`) stored as the job's inputs and named by key."""
    files = local_media(board, folder)
    data = board.model_dump(mode="json")
    for holder, key, field, _ in media_fields(data):
        if field in files:
            path, content_type = files[field]
            stored = Keys.job_input(job_id, stored_name(field, content_type))
            store.put_file(bucket, stored, path, content_type)
            holder[key] = stored
    return parse_storyboard(data)


def _collect(stack: Stack, board: Storyboard, record: JobRecord, out: Path, console: Console) -> bool:
    settings = stack.settings
    store = ObjectStore.from_settings(settings)
    job = record.job_id
    delivered = {n: s for n, s in record.segments.items() if s.stage == "delivered"}
    (out / "segments").mkdir(exist_ok=True)
    for n in sorted(delivered):
        store.get_file(settings.delivery_bucket, DeliveryKeys.segment(job, n), out / "segments" / f"{n:03d}.mp4")
        for attempt in range(1, delivered[n].attempt + 1):  # earlier attempts: the timeline's alternates (reelforge timeline)
            key, latest = Keys.segment_video(job, n, attempt), attempt == delivered[n].attempt
            if not latest and store.exists(settings.work_bucket, key):
                store.get_file(settings.work_bucket, key, out_attempt_file(out, n, attempt, delivered=False))
            if store.exists(settings.work_bucket, whole := Keys.segment_handles(key)):  # handles: the whole render
                store.get_file(settings.work_bucket, whole, out_attempt_file(out, n, attempt, latest, handles=True))
    # The storyboard as submitted, beside its report: `reelforge timeline OUT` reads both.
    (out / OUT_STORYBOARD).write_text(json.dumps(board.model_dump(mode="json"), indent=2))
    completed = record.status == "completed"
    if completed:
        store.get_file(settings.delivery_bucket, record.film_key or DeliveryKeys.film(job), out / "final.mp4")
        report = store.get_json(settings.work_bucket, Keys.report(job, record.film_version or 1))
        if record.report_html_key:
            store.get_file(settings.delivery_bucket, record.report_html_key, out / "report.html")
        for name, key in record.deliverables.items():  # crops and the thumbnail, named as delivered
            store.get_file(settings.delivery_bucket, key, out / key.rsplit("/", 1)[-1])
            report.setdefault("deliverables", {})[name] = key.rsplit("/", 1)[-1]
    else:
        report = {"job_id": job, "title": board.title, "film": None, "segments": []}
    reported = {s["index"]: s for s in report["segments"]}
    report["segments"] = []
    failed = []
    for n, seg in enumerate(board.segments, start=1):
        if n in reported:
            entry = reported[n]
        elif (d := delivered.get(n)) is not None:
            entry = {
                "index": n,
                "id": seg.id,
                "status": "delivered",
                "qa_passed": d.qa_passed,
                "qa": d.qa_scores,
                "video_key": d.video_key,
                "delivery_key": d.delivery_key,
            }
        else:
            error = (s.error if (s := record.segments.get(n)) else None) or "not delivered"
            entry = {"index": n, "id": seg.id, "status": "failed", "error": error}
            failed.append(entry)
        if entry.get("status") == "delivered":
            entry["file"] = f"segments/{n:03d}.mp4"
        report["segments"].append(entry)
    ok = completed and not failed
    report["status"] = "completed" if ok else record.status
    if report.get("film"):
        report["film"]["file"] = "final.mp4"
    if model := report.get("model"):
        report["model_note"] = "tiny random-weight test model: frames are noise by design" if model.get("random_weights") else ""
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if ok:
        film = report["film"]
        size = f"{film['width']}x{film['height']}, {film['duration_s']:.1f} s"
        reports = f"{out / 'report.json'} and {out / 'report.html'}"
        console.print(f"[green]done[/green]: {out / 'final.mp4'} ({size}), report {reports}")
        return True
    for entry in failed:
        console.print(f"[red]segment {entry['index']} ({entry['id']}) failed in {entry['error']}[/red]")
    if record.error:
        console.print(f"[red]job {record.status}: {record.error}[/red]")
    console.print(f"[red]{record.status}[/red]: see {out / 'report.json'} and {out / 'reelforge.log'}")
    return False
