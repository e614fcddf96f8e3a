"""`reelforge generate` (one segment, no bus, no S3) and `reelforge bench` (the plain pipeline vs. the generator).

Typer command functions; ``reelforge.cli`` registers them with ``app.command()(generate)`` and
``app.command()(bench)``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise typer.BadParameter(f"{text!r} is not WIDTHxHEIGHT (e.g. 1024x576)")
    return int(width), int(height)


def generate(
    prompt: Annotated[str, typer.Option(help="what the segment shows (style prefix and lighting included)")],
    output: Annotated[Path, typer.Option(help="MP4 to write")],
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="segment seed: the same seed gives the same frames")] = 1001,
    frames: Annotated[int, typer.Option(min=1, max=1000)] = 24,
    fps: Annotated[float, typer.Option(min=0.1, max=60)] = 3.0,
    model: Annotated[str | None, typer.Option(help="model id or path (default REELFORGE_MODEL)")] = None,
    width: Annotated[int, typer.Option(min=16, help="video width")] = 1920,
    height: Annotated[int, typer.Option(min=16, help="video height")] = 1080,
    negative_prompt: Annotated[str, typer.Option(help="what the frames should not show")] = "",
    generation_width: Annotated[
        int | None, typer.Option(help="render width (default REELFORGE_GENERATION_WIDTH, else the model's)")
    ] = None,
) -> None:
    """Render one segment on this machine and encode it: the specification's single-segment mode."""
    from reelforge_encoder.ffmpeg import Codec, encode_frames, even, ffmpeg_exe
    from reelforge_generator.config import GeneratorSettings
    from reelforge_generator.renderer import FrameRenderer
    from reelforge_shared.errors import InvalidInput, PermanentError
    from reelforge_shared.events import RenderSpec

    settings = GeneratorSettings(allow_test_model=True)  # one segment on this machine: local mode
    if generation_width is not None:
        settings = settings.model_copy(update={"generation_width": generation_width})
    spec = RenderSpec(
        prompt=prompt, negative_prompt=negative_prompt, seed=seed, frames=frames, fps=fps, width=width, height=height
    )
    renderer = FrameRenderer(settings)
    began = time.perf_counter()
    try:
        info = renderer.setup(model)
        with tempfile.TemporaryDirectory(prefix="reelforge-generate-") as tmp, _progress() as progress:
            task = progress.add_task("frames", total=frames)
            for i, png in renderer.render(spec, list(range(frames))):
                Path(tmp, f"{i:04d}.png").write_bytes(png)
                progress.advance(task)
            output.parent.mkdir(parents=True, exist_ok=True)
            # The specification's recipe: H.264, CRF 18, preset slow, yuv420p.
            encode_frames(Path(tmp), fps, even(width), even(height), output, Codec(exe=ffmpeg_exe(), crf=18, preset="slow"))
    except InvalidInput as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except PermanentError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    w, h = renderer.last_run.plan.size
    note = ", random weights: the frames are noise by design" if info.random_weights else ""
    console.print(
        f"{output}: {frames} frames at {fps:g} fps, {even(width)}x{even(height)} (rendered at {w}x{h} by {info.name}{note}) "
        f"in {time.perf_counter() - began:.1f} s"
    )


def bench(
    sizes: Annotated[str, typer.Option(help="WIDTHxHEIGHT[,WIDTHxHEIGHT...]; CI on a CPU: 64x64")] = "1024x576,1920x1080",
    steps: Annotated[int, typer.Option(min=1, max=200)] = 30,
    frames: Annotated[int, typer.Option(min=1, max=1000, help="frames per segment")] = 24,
    baseline_frames: Annotated[
        int | None, typer.Option(min=1, help="frames timed with the plain pipeline (default: all)")
    ] = None,
    model: Annotated[
        str, typer.Option(help="sd21 (SD 2.1's architecture, random weights), a tiny model, an id or a path")
    ] = "sd21",
    guidance: Annotated[float, typer.Option(min=0)] = 7.5,
    peak_tflops: Annotated[
        float | None, typer.Option(help="the device's dense TFLOP/s for the floor (known: H100, H200)")
    ] = None,
    out: Annotated[Path, typer.Option(help="folder for bench.json and bench.md")] = Path("bench-out"),
) -> None:
    """The plain pipeline and Reelforge's generator side by side: speed, memory, arithmetic, same images."""
    from reelforge_bench.report import write_report
    from reelforge_bench.run import BenchOptions, run_bench
    from reelforge_generator.config import GeneratorSettings

    options = BenchOptions(
        sizes=[_size(s) for s in sizes.split(",")],
        steps=steps,
        frames=frames,
        baseline_frames=baseline_frames,
        model=model,
        guidance=guidance,
        peak_tflops=peak_tflops,
    )
    report = run_bench(options, GeneratorSettings())
    json_path, md_path = write_report(report, out, options.command())
    sys.stdout.write(md_path.read_text())
    console.print(f"written: {json_path}, {md_path}")
    if not report["passed"]:
        console.print("[red]images differ from the plain pipeline's beyond the stated tolerance[/red]")
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)
