"""`reelforge`: run a storyboard end to end, run the stack, run one worker, print the bus contract."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reelforge_shared.storyboard import Storyboard, StoryboardInvalid, load_storyboard

app = typer.Typer(help="Reelforge: storyboard in, finished and checked film out.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _load(path: Path) -> Storyboard:
    try:
        return load_storyboard(path.read_bytes())
    except OSError as exc:
        console.print(f"[red]cannot read storyboard {path}: {exc.strerror}[/red]")
    except StoryboardInvalid as exc:
        console.print(f"[red]invalid storyboard {path}:[/red]")
        for error in exc.errors:
            console.print(f"  [bold]{error['field']}[/bold]: {error['message']}")
    raise typer.Exit(2)


@app.command()
def run(
    storyboard: Annotated[Path, typer.Argument(help="storyboard YAML or JSON")],
    out: Annotated[Path, typer.Option("--out", help="output folder: final.mp4, segments/NNN.mp4, report.json")],
    model: Annotated[str | None, typer.Option(help="model id or path (default REELFORGE_MODEL)")] = None,
) -> None:
    """Render a storyboard with the whole system on this machine (embedded NATS and S3 unless configured)."""
    from reelforge.local_run import local_media, run_storyboard
    from reelforge_shared.errors import InvalidInput, StartupFailed
    from reelforge_shared.settings import CommonSettings

    settings = CommonSettings()
    _refuse_unsafe_defaults(settings, embedded_s3=not settings.s3_endpoint)
    board = _load(storyboard)
    _refuse_prompts_that_cannot_fit(board, storyboard, model)
    try:
        local_media(board, storyboard.parent)  # refused before anything starts
        out.mkdir(parents=True, exist_ok=True)
        ok = asyncio.run(run_storyboard(board, out, model=model, console=console, folder=storyboard.parent))
    except InvalidInput as exc:  # a media file outside the storyboard's folder, or one that is not what it claims
        console.print(f"[red]storyboard {storyboard}: {exc}[/red]")
        raise typer.Exit(2) from None
    except StartupFailed as exc:  # a dependency past the tolerance, a refused or missing model: the setting, in one line
        console.print(f"[red]cannot start: {exc}[/red]")
        raise typer.Exit(2) from None
    raise typer.Exit(0 if ok else 1)


@app.command()
def extend(
    out: Annotated[Path, typer.Argument(help="the output folder of a `reelforge run`")],
    prompt: Annotated[str, typer.Option(help="what happens next (the style and the last segment's cast apply)")],
    duration_s: Annotated[float, typer.Option("--duration-s", help="seconds of the new segment, at the last segment's rate")],
) -> None:
    """Continue the film in OUT from its last frame: one segment appended, the film's next version, only it rendered."""
    from reelforge.local_run import extend_run
    from reelforge_shared.errors import InvalidInput, StartupFailed
    from reelforge_shared.storyboard import MAX_PROMPT_CHARS

    if not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        console.print(f"[red]--prompt: give 1 to {MAX_PROMPT_CHARS} characters, got {len(prompt.strip())}[/red]")
        raise typer.Exit(2)
    if not 0 < duration_s <= 600:
        console.print(f"[red]--duration-s: above 0 and at most 600 seconds, got {duration_s}[/red]")
        raise typer.Exit(2)
    try:
        ok = asyncio.run(extend_run(out, prompt=prompt, duration_s=duration_s, console=console))
    except StoryboardInvalid as exc:  # the film with the new segment is past a limit (frames, length)
        for error in exc.errors:
            console.print(f"[red]{error['field']}: {error['message']}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    except InvalidInput as exc:  # no run in OUT, its film not completed, a prompt its model cannot read whole
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    except StartupFailed as exc:
        console.print(f"[red]cannot start: {exc}[/red]")
        raise typer.Exit(2) from None
    raise typer.Exit(0 if ok else 1)


def _refuse_prompts_that_cannot_fit(board: Storyboard, path: Path, model: str | None) -> None:
    """As the gateway does: a prompt longer than its model's text encoder reads stops the run before anything starts."""
    from reelforge_gateway.config import GatewaySettings
    from reelforge_gateway.prompt_fit import prompt_errors

    if errors := prompt_errors(board, model, GatewaySettings().model):
        console.print(f"[red]storyboard {path}: prompts longer than their model reads:[/red]")
        for error in errors:
            console.print(f"  [bold]{error['field']}[/bold]: {error['message']}", soft_wrap=True)
        raise typer.Exit(2)


def _refuse_unsafe_defaults(settings: object, embedded_s3: bool) -> None:
    """Outside local mode (an embedded S3 server), the built-in S3 keys stop the command with one line."""
    from reelforge_shared.access import unsafe_defaults
    from reelforge_shared.settings import CommonSettings

    if not embedded_s3 and isinstance(settings, CommonSettings) and (reason := unsafe_defaults(settings)):
        console.print(f"[red]{reason}[/red]", soft_wrap=True)
        raise typer.Exit(2)


def _until_signal() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@app.command()
def up(
    port: Annotated[int, typer.Option(help="gateway HTTP port")] = 8080,
    state_dir: Annotated[Path | None, typer.Option(help="where embedded servers keep data (default: a temp dir)")] = None,
) -> None:
    """Run the whole stack in the foreground until Ctrl-C."""
    from reelforge.stack import local_stack
    from reelforge_shared.errors import StartupFailed
    from reelforge_shared.health import serve_health
    from reelforge_shared.logging import configure_logging
    from reelforge_shared.settings import CommonSettings

    settings = CommonSettings()
    configure_logging(settings.log_level, settings.log_json)
    _refuse_unsafe_defaults(settings, embedded_s3=not settings.s3_endpoint)

    async def main() -> None:
        stop = _until_signal()  # before anything starts: Ctrl-C while a model loads is a clean stop too
        directory = state_dir or Path(tempfile.mkdtemp(prefix="reelforge-up-"))
        async with local_stack(directory, gateway_port=port) as stack:
            if settings.metrics_port is not None:
                serve_health(settings.metrics_port, [s.health for s in stack.services], host=settings.metrics_host)
            console.print(f"gateway  {stack.gateway_url}  (POST /v1/jobs, GET /v1/jobs/ID)")
            console.print(f"nats     {stack.settings.nats_url}   subjects {stack.settings.subject_prefix}.>")
            buckets = f"{stack.settings.work_bucket}, {stack.settings.delivery_bucket}"
            console.print(f"s3       {stack.settings.s3_endpoint}   buckets {buckets}")
            await stop.wait()

    try:
        asyncio.run(main())
    except StartupFailed as exc:  # a dependency past the tolerance, a refused or missing model: one line
        console.print(f"[red]cannot start: {exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def worker(
    name: Annotated[str, typer.Argument(help="gateway, generator, encoder, qa or uploader", envvar="REELFORGE_WORKER")],
) -> None:
    """Run one service against the configured servers (REELFORGE_NATS_URL, REELFORGE_S3_ENDPOINT)."""
    import structlog

    from reelforge.stack import service_module
    from reelforge_shared.errors import StartupFailed
    from reelforge_shared.health import serve_health
    from reelforge_shared.logging import configure_logging
    from reelforge_shared.runner import WorkerRetired
    from reelforge_shared.service import run_service

    try:
        module = service_module(name)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from None
    settings = module.Settings()
    configure_logging(settings.log_level, settings.log_json)
    if not settings.nats_url or not settings.s3_endpoint:
        console.print("[red]REELFORGE_NATS_URL and REELFORGE_S3_ENDPOINT must be set for a worker[/red]")
        raise typer.Exit(2)
    _refuse_unsafe_defaults(settings, embedded_s3=False)
    try:
        service = module.build(settings)
    except ValueError as exc:  # a setting that cannot work (the gateway without API tokens, ...): say which
        console.print(f"[red]{name}: {exc}[/red]")
        raise typer.Exit(2) from None
    port = settings.metrics_port if settings.metrics_port is not None else 9100
    serve_health(port, [service.health], host=settings.metrics_host)

    async def main() -> None:
        await run_service(service, _until_signal())

    try:
        asyncio.run(main())
    except StartupFailed as exc:  # one line that names what to run or set, not a traceback
        structlog.get_logger("reelforge.worker").error("worker.cannot_start", service=name, error=str(exc))
        raise typer.Exit(2) from None
    except WorkerRetired as exc:  # a wedged handler thread: exit for the supervisor, never wait on that thread
        structlog.get_logger("reelforge.worker").error("worker.retired", service=name, error=str(exc))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(3)
    _exit_past_abandoned_work()


def _exit_past_abandoned_work() -> None:
    """Exit 0 now if handler threads were abandoned (a drain or a time limit): their work was handed back.

    Python would wait for nothing (they are daemon threads) but tear the interpreter down under a
    thread still inside torch or ffmpeg, which aborts the process (exit -6) instead of exiting 0.
    """
    import os
    import threading

    if any(t.name.startswith("handler-") and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


access_app = typer.Typer(help="Per-service NATS users and S3 rights, generated from reelforge_shared.access.")
app.add_typer(access_app, name="access")


@access_app.command("nats")
def access_nats(prefix: Annotated[str, typer.Option(help="subject prefix (REELFORGE_SUBJECT_PREFIX)")] = "reelforge") -> None:
    """The nats-server `authorization` block: one user per service (deploy/nats/auth.conf)."""
    from reelforge_shared.access import nats_authorization

    sys.stdout.write(nats_authorization(prefix))


@access_app.command("minio-policy")
def access_minio_policy(
    service: Annotated[str, typer.Argument(help="gateway, generator, encoder, qa or uploader")],
    work_bucket: Annotated[str, typer.Option(help="REELFORGE_WORK_BUCKET")] = "reelforge-work",
    delivery_bucket: Annotated[str, typer.Option(help="REELFORGE_DELIVERY_BUCKET")] = "f1-video-clips",
) -> None:
    """The S3 (MinIO) policy of one service's identity (deploy/minio/policies/SERVICE.json)."""
    from reelforge_shared.access import minio_policy
    from reelforge_shared.flow import SERVICES

    if service not in SERVICES:
        console.print(f"[red]unknown service {service!r}; one of: {', '.join(SERVICES)}[/red]")
        raise typer.Exit(2)
    sys.stdout.write(json.dumps(minio_policy(service, work_bucket, delivery_bucket), indent=2) + "\n")


@access_app.command("table")
def access_table() -> None:
    """Who may do what, as the Markdown table docs/security.md carries."""
    from reelforge_shared.access import access_table as table

    sys.stdout.write(table() + "\n")


@app.command("bootstrap")
def bootstrap_command() -> None:
    """Make or update the event stream and the KV buckets (once per deploy, before the services; admin identity).

    The services may not create or change them: their NATS users hold STREAM.INFO and consumer rights only.
    Reads REELFORGE_NATS_URL, REELFORGE_NATS_USER/PASSWORD (the admin user), REELFORGE_SUBJECT_PREFIX,
    REELFORGE_STREAM_REPLICAS and REELFORGE_DEDUP_WINDOW_S.
    """
    from reelforge_shared.bus import bootstrap
    from reelforge_shared.errors import StartupFailed
    from reelforge_shared.logging import configure_logging
    from reelforge_shared.settings import CommonSettings

    settings = CommonSettings()
    configure_logging(settings.log_level, settings.log_json)
    if not settings.nats_url:
        console.print("[red]REELFORGE_NATS_URL must be set for bootstrap[/red]")
        raise typer.Exit(2)
    try:
        done = asyncio.run(bootstrap(settings))
    except StartupFailed as exc:
        console.print(f"[red]bootstrap: {exc}[/red]")
        raise typer.Exit(2) from None
    for line in done:
        console.print(line)


@app.command("wait-for-stream")
def wait_for_stream_command(
    service: Annotated[str, typer.Argument(help="the service whose NATS identity asks (its REELFORGE_NATS_USER)")],
    timeout_s: Annotated[
        float | None, typer.Option(help="give up after this many seconds (default: REELFORGE_OUTAGE_TOLERANCE_S)")
    ] = None,
) -> None:
    """Wait until `reelforge bootstrap` has made the event stream and the KV buckets SERVICE uses; exit 2 past the timeout.

    Kubernetes runs it as each service's init container: the service starts once the bootstrap Job is
    done, instead of exiting and restarting until then.
    """
    from reelforge_shared.bus import wait_for_stream
    from reelforge_shared.errors import StartupFailed
    from reelforge_shared.flow import FLOW
    from reelforge_shared.logging import configure_logging
    from reelforge_shared.settings import CommonSettings

    settings = CommonSettings()
    configure_logging(settings.log_level, settings.log_json)
    if service not in FLOW:
        console.print(f"[red]wait-for-stream: no service {service!r} (one of {', '.join(FLOW)})[/red]")
        raise typer.Exit(2)
    if not settings.nats_url:
        console.print("[red]REELFORGE_NATS_URL must be set for wait-for-stream[/red]")
        raise typer.Exit(2)
    try:
        found = asyncio.run(wait_for_stream(settings, service, settings.outage_tolerance_s if timeout_s is None else timeout_s))
    except StartupFailed as exc:
        console.print(f"[red]wait-for-stream: {exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"found {', '.join(found)}")


@app.command("check-secrets")
def check_secrets(names: Annotated[list[str], typer.Argument(help="environment variables holding secrets")]) -> None:
    """Refuse (exit 2, one line naming it) any of these variables that is empty or a placeholder such as change-me.

    Compose runs it before MinIO and Grafana start: their passwords reach no Reelforge service, and each
    service refuses its own placeholders.
    """
    from reelforge_shared.access import secret_refusal

    for name in names:
        if refusal := secret_refusal(name, os.environ.get(name, "")):
            console.print(f"[red]{refusal}[/red]")
            raise typer.Exit(2)
    console.print(f"secrets checked: {', '.join(names)}")


@app.command()
def flow() -> None:
    """The job's path as a Mermaid flowchart, generated from the flow table (the README's diagram)."""
    from reelforge_shared.flow import mermaid

    sys.stdout.write(mermaid())


@app.command()
def settings() -> None:
    """Print every REELFORGE_ setting as the Markdown table the README carries."""
    from reelforge.stack import settings_table

    sys.stdout.write(settings_table() + "\n")


@app.command()
def metrics() -> None:
    """Print docs/metrics.md: every Prometheus metric the services register, with its labels."""
    from reelforge_shared.metrics import metrics_markdown

    sys.stdout.write(metrics_markdown())


@app.command()
def schema() -> None:
    """Print the JSON Schema of every event on the bus, keyed by subject."""
    from reelforge_shared.events import json_schema

    json.dump(json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")


@app.command()
def asyncapi(
    nats_url: Annotated[str, typer.Option(help="server URL written into the document")] = "nats://127.0.0.1:4222",
) -> None:
    """Print the AsyncAPI 3 document of the bus (channels, operations, messages), generated from the event models."""
    from reelforge_shared.asyncapi import asyncapi_document

    json.dump(asyncapi_document(nats_url), sys.stdout, indent=2)
    sys.stdout.write("\n")


from reelforge.cli_encode import encode  # noqa: E402 - command modules keep heavy imports inside
from reelforge.cli_generator import bench, generate  # noqa: E402 - as above
from reelforge.cli_qa import qa  # noqa: E402 - as above
from reelforge.cli_timeline import timeline  # noqa: E402 - as above
from reelforge.cli_utilities import COMMANDS as UTILITIES  # noqa: E402 - as above

# `reelforge encode film` (segments -> the film) and the editing utilities on a finished video, one word for the encoder's work.
encode_app = typer.Typer(
    help="The encoder on local files, without the bus: the film, and utilities on a finished video.", no_args_is_help=True
)
encode_app.command("film")(encode)
for name, command in UTILITIES.items():
    encode_app.command(name)(command)
app.add_typer(encode_app, name="encode")
app.command()(generate)
app.command()(bench)
app.command("qa")(qa)
app.command()(timeline)

if __name__ == "__main__":
    app()
