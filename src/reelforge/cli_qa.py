"""`reelforge qa`: the QA checks on local videos, without the bus.

The videos are the segments in film order. With a storyboard (one video per segment) the
technical gate checks the size, rate and length it asks for, and the film checks know each
segment's characters, location and transition; without one, each video is only checked against
itself (codec, audio) and light is compared across all of them. ``--film`` adds the compiled
film, where the joins (hard cut where a dissolve was asked, flash frames) are read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from reelforge_shared.storyboard import Storyboard

if TYPE_CHECKING:
    from reelforge_qa.job_report import JobReport

console = Console(stderr=True)


def _segment_rate(board: Storyboard, frames: int, fps: float) -> tuple[int, float]:
    # Copied from services/encoder/src/reelforge_encoder/look.py (segment_rate): segments are raised to output.fps.
    out = board.output.fps
    return (round(frames * out / fps), out) if out and out > fps else (frames, fps)


def _plan(videos: list[Path], storyboard: Path | None) -> tuple[list[Any], list[Any], str]:
    """(Expected per video, SegmentVideo per video, title) from the storyboard or from the files."""
    from reelforge_qa.film_checks import SegmentVideo
    from reelforge_qa.scores import Expected
    from reelforge_shared.media import probe
    from reelforge_shared.storyboard import StoryboardInvalid, load_storyboard

    if storyboard is None:
        infos = [probe(v) for v in videos]
        expected = [Expected(i.width, i.height, i.fps, i.frame_count) for i in infos]
        return expected, [SegmentVideo(v, v.stem) for v in videos], "Reelforge QA"
    try:
        board = load_storyboard(storyboard.read_bytes())
    except OSError as exc:
        raise _fail(f"cannot read storyboard {storyboard}: {exc.strerror}", 2) from None
    except StoryboardInvalid as exc:
        raise _fail(f"invalid storyboard {storyboard}: {exc}", 2) from None
    if len(board.segments) != len(videos):
        raise _fail(f"{len(videos)} videos for a storyboard of {len(board.segments)} segments (one per segment, in order)", 2)
    expected, plan = [], []
    for video, seg in zip(videos, board.segments, strict=True):
        frames, fps = _segment_rate(board, seg.frames, seg.fps)
        expected.append(Expected(board.output.width, board.output.height, fps, frames))
        transition = seg.transition
        plan.append(SegmentVideo(video, seg.id, tuple(seg.characters), seg.location, transition.type, transition.duration))
    return expected, plan, board.title


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def build_report(
    videos: list[Path], storyboard: Path | None = None, film: Path | None = None, embedding_model: str | None = None
) -> JobReport:
    """The job report ``reelforge qa`` prints: segments with their gates, ``film_qa``, gate failure counts."""
    from reelforge_qa.config import QaSettings
    from reelforge_qa.film_checks import check_film
    from reelforge_qa.job_report import JobReport, attempt_result, segment_result
    from reelforge_qa.scores import score_video

    settings = QaSettings()
    expected, plan, title = _plan(videos, storyboard)
    model = embedding_model or settings.qa_embedding_model
    embedder = None
    if model:
        from reelforge_qa.embeddings import ClipEmbedder

        embedder = ClipEmbedder(model)
    reports = [score_video(v, e, settings.thresholds(), settings.sample_frames) for v, e in zip(videos, expected, strict=True)]
    film_qa = check_film(plan, settings.film_thresholds(), film=film, embedder=embedder)
    segments = [
        segment_result(
            i,
            p.segment_id,
            r,
            path=str(p.path),
            characters=list(p.characters),
            location=p.location,
            duration_s=float(r.measured["duration_s"]) if "duration_s" in r.measured else None,
            qa_history=[attempt_result(1, r)],
        )
        for i, (p, r) in enumerate(zip(plan, reports, strict=True), start=1)
    ]
    return JobReport(title=title, segments=segments, film_qa=film_qa)


def qa(
    videos: Annotated[list[Path], typer.Argument(help="segment videos in film order")],
    storyboard: Annotated[Path | None, typer.Option(help="storyboard YAML or JSON: one segment per video")] = None,
    film: Annotated[Path | None, typer.Option(help="the compiled film: joins are read there (dissolves, flash frames)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON on stdout")] = False,
    html: Annotated[Path | None, typer.Option(help="also write the report as self-contained HTML here")] = None,
    embedding_model: Annotated[
        str | None, typer.Option(help="local CLIPModel folder (default REELFORGE_QA_EMBEDDING_MODEL)")
    ] = None,
) -> None:
    """Score local videos with every QA gate and the film checks (continuity, joins); exit 1 when any fails."""
    missing = [str(v) for v in [*videos, *([film] if film else [])] if not v.is_file()]
    if missing:
        raise _fail(f"no such file: {', '.join(missing)}", 2)
    report = build_report(videos, storyboard, film, embedding_model)
    if as_json:
        json.dump(report.model_dump(mode="json"), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for seg in report.segments:
            state = "[green]passed[/green]" if seg.qa_passed else f"[red]failed: {', '.join(seg.qa_failed_gates)}[/red]"
            console.print(f"{seg.id}: {state}  " + " ".join(f"{n} {s:.2f}" for n, s in seg.qa.items()))
        for line in report.film_qa.failures if report.film_qa else []:
            console.print(f"[red]{line}[/red]")
        console.print("[green]passed[/green]" if report.passed else "[red]failed[/red]")
    if html is not None:
        from reelforge_qa.report_html import render_html, thumbnail_strip

        thumbs = {seg.id: thumbnail_strip(Path(seg.path)) for seg in report.segments if seg.path}
        html.write_text(render_html(report, thumbs), encoding="utf-8")
    raise typer.Exit(0 if report.passed else 1)
