"""`reelforge run`: submit one storyboard to a local stack, show progress, fetch the film and report."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import nats
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from reelforge.stack import Stack, local_stack
from reelforge.watch import JobWatch
from reelforge_gateway.submit import new_job_id, submit_job
from reelforge_shared.bus import Bus
from reelforge_shared.logging import configure_logging
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard

PROGRESS_STAGES = ("generated", "encoded", "checked", "delivered")


async def run_storyboard(board: Storyboard, out: Path, *, model: str | None = None, console: Console | None = None) -> bool:
    """Render ``board`` into ``out``; True when every segment and the film were delivered."""
    console = console or Console(stderr=True)
    log_file = (out / "reelforge.log").open("w")
    configure_logging("INFO", json=True, stream=log_file)  # the terminal belongs to the progress bars
    with tempfile.TemporaryDirectory(prefix="reelforge-run-") as state:
        summary = f"{len(board.segments)} segments, {board.duration_s:.1f} s"
        console.print(f"[bold]{board.title}[/bold]: {summary}; starting services ...")
        async with local_stack(Path(state)) as stack:
            watch = await _render(stack, board, model, console)
            ok = _collect(stack, board, watch, out, console)
    log_file.close()
    return ok


async def _render(stack: Stack, board: Storyboard, model: str | None, console: Console) -> JobWatch:
    settings = stack.settings
    nc = await nats.connect(settings.nats_url)
    bus = await Bus.connect(settings, name="reelforge-cli")
    store = ObjectStore.from_settings(settings)
    try:
        watch = JobWatch(job_id="", segment_count=len(board.segments))

        async def on_message(msg: nats.aio.msg.Msg) -> None:
            watch.on_message(msg.subject, msg.data)

        await nc.subscribe(f"{settings.subject_prefix}.>", cb=on_message)
        watch.job_id = new_job_id()
        await submit_job(board, bus=bus, store=store, bucket=settings.work_bucket, job_id=watch.job_id, model=model)
        console.print(f"job [bold]{watch.job_id}[/bold] submitted")
        columns = (
            TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            bars = {stage: progress.add_task(stage, total=len(board.segments)) for stage in PROGRESS_STAGES}
            film = progress.add_task("film", total=1)
            while not watch.settled:
                stack.check_alive()
                watch.changed.clear()
                for stage, bar in bars.items():
                    progress.update(bar, completed=len(watch.stages[stage]))
                progress.update(film, completed=int(watch.film is not None))
                try:
                    await asyncio.wait_for(watch.changed.wait(), timeout=1.0)
                except TimeoutError:
                    pass
            for stage, bar in bars.items():
                progress.update(bar, completed=len(watch.stages[stage]))
            progress.update(film, completed=int(watch.film is not None))
        return watch
    finally:
        await nc.close()
        await bus.close()


def _collect(stack: Stack, board: Storyboard, watch: JobWatch, out: Path, console: Console) -> bool:
    settings = stack.settings
    store = ObjectStore.from_settings(settings)
    job = watch.job_id
    (out / "segments").mkdir(exist_ok=True)
    for n in sorted(watch.delivered):
        store.get_file(settings.delivery_bucket, DeliveryKeys.segment(job, n), out / "segments" / f"{n:03d}.mp4")
    if watch.completed:
        store.get_file(settings.delivery_bucket, DeliveryKeys.film(job), out / "final.mp4")
        report = store.get_json(settings.work_bucket, Keys.report(job))
        done = watch.completed
        if done.report_html_key:
            store.get_file(settings.delivery_bucket, done.report_html_key, out / "report.html")
        for name, key in done.deliverables.items():  # crops and the thumbnail, named as delivered
            store.get_file(settings.delivery_bucket, key, out / key.rsplit("/", 1)[-1])
            report.setdefault("deliverables", {})[name] = key.rsplit("/", 1)[-1]
    else:
        report = {"job_id": job, "title": board.title, "film": None, "segments": []}
    delivered = {s["index"]: s for s in report["segments"]}
    report["segments"] = []
    for n, seg in enumerate(board.segments, start=1):
        if n in delivered:
            entry = delivered[n]
        elif n in watch.delivered:
            d = watch.delivered[n]
            entry = {"index": n, "id": seg.id, "status": "delivered", "qa_passed": d.qa.passed,
                     "qa": {k: g.score for k, g in d.qa.gates.items()}, "video_key": d.video_key, "delivery_key": d.delivery_key}
        else:
            failure = watch.failed.get(n)
            error = f"{failure.stage}: {failure.error}" if failure else "not delivered"
            entry = {"index": n, "id": seg.id, "status": "failed", "error": error}
        if entry.get("status") == "delivered":
            entry["file"] = f"segments/{n:03d}.mp4"
        report["segments"].append(entry)
    report["status"] = "completed" if watch.ok else "failed"
    if report.get("film"):
        report["film"]["file"] = "final.mp4"
    if model := report.get("model"):
        report["model_note"] = "tiny random-weight test model: frames are noise by design" if model.get("random_weights") else ""
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if watch.ok:
        film = report["film"]
        size = f"{film['width']}x{film['height']}, {film['duration_s']:.1f} s"
        reports = f"{out / 'report.json'} and {out / 'report.html'}"
        console.print(f"[green]done[/green]: {out / 'final.mp4'} ({size}), report {reports}")
        return True
    for n, failure in sorted(watch.failed.items()):
        console.print(f"[red]segment {n} ({failure.segment_id}) failed in {failure.stage}: {failure.error}[/red]")
    if watch.job_error:
        console.print(f"[red]job failed: {watch.job_error}[/red]")
    console.print(f"[red]failed[/red]: see {out / 'report.json'} and {out / 'reelforge.log'}")
    return False
