"""`reelforge timeline`: a finished film as an editor's timeline (OpenTimelineIO, FCPXML, FCP7 XML, EDL, Kdenlive),
or the hand-off bundle (zip: every timeline, the media, the film, a README)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)


def timeline(
    job_or_out: Annotated[str, typer.Argument(help="a `reelforge run` output folder, or a job id on the gateway")],
    format: Annotated[str, typer.Option("--format", "-f", help="otio, fcpxml, fcp7xml, edl or kdenlive")] = "otio",
    bundle: Annotated[bool, typer.Option("--bundle", help="a zip: every timeline format, the media, the film, a README")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default: beside the film)")] = None,
    version: Annotated[int | None, typer.Option(help="film version (a job id; default the latest)")] = None,
    gateway: Annotated[
        str, typer.Option(help="gateway URL (a job id)", envvar="REELFORGE_GATEWAY_URL")
    ] = "http://127.0.0.1:8080",
    import_: Annotated[
        Path | None,
        typer.Option(
            "--import",
            help="send this edited .otio back to the job (a job id): edited prompts/seeds are re-rendered; trims, "
            "reorders, removals and other takes or attempts become a new film version with nothing rendered",
        ),
    ] = None,
) -> None:
    """Export a finished film's timeline: one video track with the shots and transitions, sound, alternates (earlier
    attempts, other takes) on disabled tracks, QA findings as markers, each clip's prompt, seed, model and QA scores as
    metadata."""
    from reelforge_gateway.timeline.bundle import timeline_name, write_bundle
    from reelforge_gateway.timeline.export import FORMATS, write

    if format not in FORMATS:
        console.print(f"[red]--format {format!r}: one of {', '.join(FORMATS)}[/red]")
        raise typer.Exit(2)
    out = Path(job_or_out)
    if import_ is not None:
        _import(job_or_out, import_, gateway)
        return
    if not out.is_dir():
        _from_gateway(job_or_out, format, bundle, output, version, gateway)
        return
    from reelforge_gateway.timeline.sources import from_out

    try:
        sourced = from_out(out)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    cut = sourced.cut
    if bundle:
        target = output or out / f"{cut.job_id or 'film'}-bundle.zip"
        with tempfile.TemporaryDirectory() as work:
            write_bundle(cut, lambda name, dest: shutil.copyfile(sourced.files[name], dest), target, Path(work))
    else:
        # Media references are relative to the timeline file: beside the film, segments/ holds them as media/ would.
        target = output or out / timeline_name(format)  # type: ignore[arg-type]
        urls = {name: os.path.relpath(path, target.parent) for name, path in sourced.files.items()}
        target.write_text(write(cut, format, media_urls=urls))  # type: ignore[arg-type]
    console.print(f"{target} ({len(cut.shots)} shots, {cut.frame_count} frames at {cut.fps:g} fps)")


def _from_gateway(job: str, fmt: str, bundle: bool, output: Path | None, version: int | None, gateway: str) -> None:
    import httpx

    token = os.environ.get("REELFORGE_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = f"/v1/jobs/{job}/bundle" if bundle else f"/v1/jobs/{job}/timeline"
    params: dict[str, str | int] = {} if bundle else {"format": fmt}
    if version is not None:
        params["version"] = version
    target = output or Path(f"{job}-bundle.zip" if bundle else f"{job}.{fmt}")
    with httpx.Client(base_url=gateway, headers=headers, timeout=300, follow_redirects=True) as client:
        with client.stream("GET", path, params=params) as response:
            if response.status_code != 200:
                response.read()
                console.print(f"[red]{gateway}{path}: {response.status_code} {response.text[:500]}[/red]")
                raise typer.Exit(1)
            with target.open("wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
    console.print(f"{target}")


def _import(job: str, edited: Path, gateway: str) -> None:
    """POST the edited timeline to the job (``POST /v1/jobs/{id}/timeline``); the gateway's refusal is printed as is."""
    import httpx

    token = os.environ.get("REELFORGE_API_TOKEN")
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    with httpx.Client(base_url=gateway, headers=headers, timeout=60) as client:
        answer = client.post(f"/v1/jobs/{job}/timeline", content=edited.read_bytes())
    if answer.status_code != 202:
        console.print(f"[red]{answer.status_code}: {answer.text[:1000]}[/red]", soft_wrap=True)
        raise typer.Exit(2 if answer.status_code == 422 else 1)
    view = answer.json()
    queued = [n for n, s in view["segments"].items() if s["stage"] == "queued"]
    if queued:
        console.print(f"job {job}: re-rendering segments {', '.join(queued)}; a new film version follows")
    else:
        console.print(f"job {job}: film version {view['film_version']} follows, joined from the stored media (nothing rendered)")
