"""`reelforge run`: submit one storyboard to a local stack, show progress, fetch the film and report.

Progress comes from the job ledger (the same record the gateway serves). The embedded servers keep
their data in ``OUT/.reelforge/state`` and the job id in ``OUT/.reelforge/job.json``: a killed run
is resumed by running the same command again (same storyboard and model), and the work already
stored and acknowledged is not done twice. An edited storyboard in the same folder (same model and
number of segments, the last run completed) is the next film version of the last run's job, and
`reelforge extend` appends a segment to it (:func:`extend_run`); another storyboard is a new job that
reuses the unchanged shots of the earlier runs there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from reelforge.stack import Stack, local_stack
from reelforge_gateway.config import GatewaySettings
from reelforge_gateway.prompt_fit import prompt_errors
from reelforge_gateway.submit import new_job_id, submit_job
from reelforge_gateway.timeline.sources import OUT_STORYBOARD, out_attempt_file
from reelforge_shared.bus import Bus
from reelforge_shared.errors import InvalidInput
from reelforge_shared.jobs import LOCAL_OWNER, JobRecord, Ledger, resume_job
from reelforge_shared.logging import configure_logging
from reelforge_shared.references import ReferenceLimits, check_audio, check_image, media_fields, stored_name
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, parse_storyboard
from reelforge_shared.versions import extended_storyboard, new_storyboard_version

PROGRESS_STAGES = ("generated", "encoded", "checked", "delivered")
RUN_DIR = ".reelforge"


@dataclass(frozen=True, slots=True)
class RunState:
    """What a run in ``OUT`` goes on from (``OUT/.reelforge/job.json``)."""

    state: Path  # the embedded servers' data
    job_id: str
    digest: str  # the storyboard's and model's SHA-256
    resumed: bool  # the same storyboard and model as the last run there: its job goes on
    previous: str | None = None  # the last run's job, when this one asks for another storyboard with the same model


def storyboard_digest(board: Storyboard, model: str | None) -> str:
    return hashlib.sha256(json.dumps([board.model_dump(mode="json"), model], sort_keys=True).encode()).hexdigest()


def run_state(out: Path, board: Storyboard, model: str | None) -> RunState:
    """Where a run of ``board`` in ``out`` starts: the same storyboard and model resume the last run's job.

    Another storyboard with the same model names the last run's job as ``previous``: :func:`run_storyboard`
    makes this run that job's next film version when it can (see there), else a new job.
    """
    run_dir = out / RUN_DIR
    job_file = run_dir / "job.json"
    digest = storyboard_digest(board, model)
    if job_file.exists():
        last = json.loads(job_file.read_text())
        if last.get("storyboard_sha256") == digest:
            return RunState(run_dir / "state", last["job_id"], digest, resumed=True)
        if last.get("model") == model:
            return RunState(run_dir / "state", new_job_id(), digest, resumed=False, previous=last["job_id"])
    return RunState(run_dir / "state", new_job_id(), digest, resumed=False)


def remember(out: Path, job_id: str, digest: str, model: str | None, *, versioned: bool = False) -> None:
    """The job a run in ``out`` makes or moves: a killed run, run again, goes on with it.

    ``versioned``: the job has (or is making) a film version from another storyboard than its first, so
    going on is never submitting it again (that would ask for its first attempts).
    """
    (out / RUN_DIR).mkdir(parents=True, exist_ok=True)
    data = {"job_id": job_id, "storyboard_sha256": digest, "model": model, "versioned": versioned}
    (out / RUN_DIR / "job.json").write_text(json.dumps(data))


def _versioned(out: Path) -> bool:
    job_file = out / RUN_DIR / "job.json"
    return job_file.exists() and bool(json.loads(job_file.read_text()).get("versioned"))


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

    An edited storyboard (same model, same number of segments) after a completed run in ``out`` is that
    job's next film version, as ``PUT /v1/jobs/{id}/storyboard``: only the changed shots render, and the
    report's ``changes`` says what differs from the version before. Otherwise it is a new job, which
    still reuses the unchanged shots of the earlier runs there.
    """
    console = console or Console(stderr=True)
    run = run_state(out, board, model)
    if run.previous is None:  # known before anything starts (a run after another storyboard: once its job is read)
        remember(out, run.job_id, run.digest, model, versioned=run.resumed and _versioned(out))
    verb = "resuming" if run.resumed else "starting"
    console.print(f"[bold]{board.title}[/bold]: {len(board.segments)} segments, {board.duration_s:.1f} s; {verb} services ...")
    with _logging_to(out / "reelforge.log"):  # the terminal belongs to the progress bars
        async with local_stack(run.state, **overrides) as stack:
            record = await _render(stack, board, run, out, model, console, folder)
            # in a thread: the film and its deliverables (100 MB and more) are downloaded while the services' loop goes
            # on (the ledger's and the webhooks' last steps of the job)
            return await asyncio.to_thread(_collect, stack, board, record, out, console)


async def _render(
    stack: Stack, board: Storyboard, run: RunState, out: Path, model: str | None, console: Console, folder: Path | None
) -> JobRecord:
    settings = stack.settings
    bus = await Bus.connect(settings, name="reelforge-cli")
    store = ObjectStore.from_settings(settings)
    reuse = GatewaySettings().shot_reuse  # REELFORGE_SHOT_REUSE=false: render every segment
    try:
        ledger = await Ledger.open(bus)
        job_id, versioned = run.job_id, _versioned(out)
        if run.previous is not None:
            last = await ledger.get(run.previous)
            versioned = last is not None and last.status == "completed" and last.segment_count == len(board.segments)
            job_id = run.previous if versioned else run.job_id  # the last run's job, its next film version; else a new job
            remember(out, job_id, run.digest, model, versioned=versioned)
        board = await asyncio.to_thread(stage_local_media, board, folder, store=store, bucket=settings.work_bucket, job_id=job_id)
        if versioned:
            await _next_version(ledger, bus, store, settings.work_bucket, job_id, board, reuse=reuse)
            console.print(f"job [bold]{job_id}[/bold]: the storyboard's next film version")
        else:  # submitting again is harmless: every publish carries its Nats-Msg-Id, so a resumed run adds nothing new
            await submit_job(
                board,
                bus=bus,
                store=store,
                bucket=settings.work_bucket,
                job_id=job_id,
                model=model,
                owner=LOCAL_OWNER,
                reuse=reuse,
            )
            console.print(f"job [bold]{job_id}[/bold] {'resumed' if run.resumed else 'submitted'}")
        return await _follow(stack, ledger, job_id, len(board.segments), console)
    finally:
        await bus.close()


async def _next_version(
    ledger: Ledger,
    bus: Bus,
    store: ObjectStore,
    bucket: str,
    job_id: str,
    board: Storyboard,
    *,
    reuse: bool,
    extends: bool = False,
) -> None:
    """``board`` as the job's next film version; a run killed on the way goes on (the same storyboard again changes nothing)."""
    record = await ledger.get(job_id)
    if record is not None and record.status == "completed":
        await new_storyboard_version(ledger, bus, store, bucket, job_id, board, reuse=reuse, by=LOCAL_OWNER, extends=extends)
    elif record is not None and record.status == "failed":
        await resume_job(ledger, bus, board, job_id, by=LOCAL_OWNER)


async def _follow(stack: Stack, ledger: Ledger, job_id: str, segments: int, console: Console) -> JobRecord:
    """Progress bars from the job's ledger record until it is finished; the record."""
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    record = JobRecord(job_id=job_id, segment_count=segments)
    with Progress(*columns, console=console) as progress:
        bars = {stage: progress.add_task(stage, total=segments) for stage in PROGRESS_STAGES}
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


async def extend_run(out: Path, *, prompt: str, duration_s: float, console: Console | None = None, **overrides: Any) -> bool:
    """Append a segment to the film of the last run in ``out`` that continues from its last frame, as
    ``POST /v1/jobs/{id}/segments/{n}/extend``: the job's next film version, only the new segment rendered.

    Refused (:class:`InvalidInput`) when ``out`` holds no run, or its job is not completed (a killed extension
    of the same prompt and duration, run again, goes on instead).
    """
    console = console or Console(stderr=True)
    job_file = out / RUN_DIR / "job.json"
    if not job_file.exists():
        raise InvalidInput(f"{out} holds no `reelforge run` (no {RUN_DIR}/job.json): run a storyboard into it first")
    last = json.loads(job_file.read_text())
    with _logging_to(out / "reelforge.log"):
        async with local_stack(out / RUN_DIR / "state", **overrides) as stack:
            record, board = await _extend(stack, out, last, prompt=prompt, duration_s=duration_s, console=console)
            return _collect(stack, _as_written(out, board), record, out, console)


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The process's logs (JSON lines) into ``path`` while the run lasts; the logging set-up before it restored after,
    so that a caller in the same process (the tests, a notebook) does not go on writing to the closed file."""
    saved, handlers, level = structlog.get_config(), logging.root.handlers[:], logging.root.level
    with path.open("a") as log_file:
        configure_logging("INFO", json=True, stream=log_file)
        try:
            yield
        finally:
            structlog.configure(**saved)
            logging.root.handlers[:], logging.root.level = handlers, level


async def _extend(
    stack: Stack, out: Path, last: dict[str, Any], *, prompt: str, duration_s: float, console: Console
) -> tuple[JobRecord, Storyboard]:
    settings = stack.settings
    bus = await Bus.connect(settings, name="reelforge-cli")
    store, bucket, job_id = ObjectStore.from_settings(settings), settings.work_bucket, last["job_id"]
    try:
        ledger = await Ledger.open(bus)
        record = await ledger.get(job_id)
        if record is None:
            raise InvalidInput(f"the job of the last run in {out} ({job_id}) is not in its servers' data")
        old = parse_storyboard(store.get_json(bucket, Keys.storyboard(job_id)))
        asked = {"prompt": prompt, "duration_s": duration_s, "segments": len(old.segments)}
        if last.get("extending") == asked | {"segments": len(old.segments) - 1}:  # this very extension, killed on the way
            board = old
            if record.status == "failed":
                await resume_job(ledger, bus, board, job_id, by=LOCAL_OWNER)
        elif record.status != "completed":
            raise InvalidInput(f"the film in {out} is {record.status}; it is extended once its run is completed")
        else:
            board = _extended(old, record, prompt=prompt, duration_s=duration_s)
            remember(out, job_id, storyboard_digest(board, last.get("model")), last.get("model"), versioned=True)
            data = json.loads((out / RUN_DIR / "job.json").read_text()) | {"extending": asked}
            (out / RUN_DIR / "job.json").write_text(json.dumps(data))
            reuse = GatewaySettings().shot_reuse
            await new_storyboard_version(ledger, bus, store, bucket, job_id, board, reuse=reuse, by=LOCAL_OWNER, extends=True)
        console.print(f"job [bold]{job_id}[/bold]: extended to {len(board.segments)} segments, the film's next version")
        record = await _follow(stack, ledger, job_id, len(board.segments), console)
        if record.status == "completed":  # done: the same prompt and duration again is another extension
            remember(out, job_id, storyboard_digest(board, last.get("model")), last.get("model"), versioned=True)
        return record, board
    finally:
        await bus.close()


def _as_written(out: Path, board: Storyboard) -> Storyboard:
    """The extended ``board`` as ``out``'s storyboard.json has the run's (its media named as in the storyboard's folder,
    not by their keys in the job): that file with the appended segment."""
    written = out / OUT_STORYBOARD
    if not written.exists():
        return board
    data = json.loads(written.read_text())
    data["segments"] = [*data["segments"], *(s.model_dump(mode="json") for s in board.segments[len(data["segments"]) :])]
    return parse_storyboard(data)


def _extended(old: Storyboard, record: JobRecord, *, prompt: str, duration_s: float) -> Storyboard:
    """``old`` with the extension appended (:func:`extended_storyboard`), rendered by the model its last segment was
    (a run's ``--model``); refused (:class:`InvalidInput`) when its prompt is longer than that model reads."""
    data = extended_storyboard(old, prompt=prompt, duration_s=duration_s).model_dump(mode="json")
    last = record.segments.get(len(old.segments))
    if data["segments"][-1]["model"] is None and old.model is None and last is not None and last.model:
        data["segments"][-1]["model"] = last.model
    board = parse_storyboard(data)
    if errors := prompt_errors(board, None, GatewaySettings().model):
        raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors))
    return board


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


# What a run writes into OUT itself: a medium the storyboard names there is not copied over it.
RUN_FILES = {RUN_DIR, OUT_STORYBOARD, "segments", "cast", "report.json", "report.html", "reelforge.log"}


def collect_media(store: ObjectStore, bucket: str, job: str, board: Storyboard, out: Path) -> list[Path]:
    """The storyboard's local media (reference images, logo, music, a segment's audio) beside ``out``'s storyboard.json,
    at the paths it names them by, from the job's stored inputs: ``reelforge qa OUT`` reads a character's
    ``reference_image`` there as it reads the storyboard's own folder. A path out of ``out`` or onto a file the run
    writes (:data:`RUN_FILES`, ``final*``) is left out; returns the files written."""
    stored = store.find_json(bucket, Keys.storyboard(job)) or {}
    if not stored:
        return []
    named = {field: holder.get(key) for holder, key, field, _ in media_fields(board.model_dump(mode="json"))}
    root, written = out.resolve(), []
    for holder, key, field, _ in media_fields(parse_storyboard(stored).model_dump(mode="json")):
        ref, kept = named.get(field), holder.get(key)
        if not ref or not kept or "://" in ref or not kept.startswith(Keys.job(job) + "/"):
            continue  # not a local file of this run, or not stored as the job's input
        target = (root / ref).resolve()
        if not target.is_relative_to(root) or target == root:
            continue
        first = target.relative_to(root).parts[0]
        if first in RUN_FILES or first.startswith("final"):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(store.get_file(bucket, kept, target))
    return written


def _collect_cast_sheets(store: ObjectStore, bucket: str, report: dict[str, Any], out: Path) -> None:
    """The cast sheet images the film's segments were conditioned on, as ``cast/KEY.png`` beside the report, named in
    its entries (``file``, as a segment's): `reelforge qa OUT` scores the segments against them."""
    sheets = [*report.get("cast_sheet", []), *(c for s in report["segments"] for c in s.get("cast_sheet", []))]
    for sheet in sheets:
        file = f"cast/{sheet['key']}.png"
        if not (out / file).exists() and store.exists(bucket, sheet["image"]):
            (out / "cast").mkdir(exist_ok=True)
            store.get_file(bucket, sheet["image"], out / file)
        if (out / file).exists():
            sheet["file"] = file


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
    # The storyboard as submitted, beside its report: `reelforge timeline OUT` reads both; its media beside it.
    (out / OUT_STORYBOARD).write_text(json.dumps(board.model_dump(mode="json"), indent=2))
    collect_media(store, settings.work_bucket, job, board, out)
    completed = record.status == "completed"
    if completed:
        store.get_file(settings.delivery_bucket, record.film_key or DeliveryKeys.film(job), out / "final.mp4")
        report = store.get_json(settings.work_bucket, Keys.report(job, record.film_version or 1))
        if record.report_html_key:
            store.get_file(settings.delivery_bucket, record.report_html_key, out / "report.html")
        for name, key in record.deliverables.items():  # crops and the thumbnail, named as delivered
            store.get_file(settings.delivery_bucket, key, out / key.rsplit("/", 1)[-1])
            report.setdefault("deliverables", {})[name] = key.rsplit("/", 1)[-1]
        _collect_cast_sheets(store, settings.work_bucket, report, out)
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
