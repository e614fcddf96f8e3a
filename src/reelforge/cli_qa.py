"""`reelforge qa`: the QA checks on local videos, without the bus.

The videos are the segments in film order. With a storyboard (one video per segment) the
technical gate checks the size, rate and length it asks for, and the film checks know each
segment's characters, location and transition; without one, each video is only checked against
itself (codec, audio) and light is compared across all of them. ``--film`` adds the compiled
film, where the joins (hard cut where a dissolve was asked, flash frames) are read.

With a storyboard each segment is also scored against the references of what it shows, as film QA scores
them (:mod:`reelforge_qa.references`, report-only): a character's ``reference_image`` (a local file, read
relative to the storyboard's folder and checked as ``reelforge run`` checks it; never a URL).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from reelforge_shared.errors import InvalidInput
from reelforge_shared.storyboard import Storyboard

if TYPE_CHECKING:
    from reelforge_qa.job_report import JobReport
    from reelforge_qa.references import Reference

console = Console(stderr=True)


def _segment_rate(board: Storyboard, frames: int, fps: float) -> tuple[int, float]:
    # Copied from services/encoder/src/reelforge_encoder/look.py (segment_rate): segments are raised to output.fps.
    out = board.output.fps
    return (round(frames * out / fps), out) if out and out > fps else (frames, fps)


def _plan(videos: list[Path], storyboard: Path | None) -> tuple[list[Any], list[Any], str, Storyboard | None]:
    """(Expected per video, SegmentVideo per video, title, storyboard) from the storyboard or from the files."""
    from reelforge_qa.film_checks import SegmentVideo
    from reelforge_qa.scores import Expected
    from reelforge_shared.media import probe
    from reelforge_shared.storyboard import StoryboardInvalid, load_storyboard

    if storyboard is None:
        infos = [probe(v) for v in videos]
        expected = [Expected(i.width, i.height, i.fps, i.frame_count) for i in infos]
        return expected, [SegmentVideo(v, v.stem) for v in videos], "Reelforge QA", None
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
    return expected, plan, board.title, board


def read_image(path: Path, label: str) -> bytes:
    """A local reference image's bytes, checked as ``reelforge run`` checks its media: within the byte cap, a PNG, JPEG
    or WebP within the pixel cap that decodes whole; ``InvalidInput`` naming ``label`` and the path otherwise."""
    from reelforge_shared.references import ReferenceLimits, check_image

    limits = ReferenceLimits()
    if not path.is_file():
        raise InvalidInput(f"{label}: no such file {path}")
    if (size := path.stat().st_size) > limits.max_bytes:
        raise InvalidInput(f"{label}: {path} is {size} bytes, over the {limits.max_bytes}-byte cap")
    data = path.read_bytes()
    check_image(data, f"{label} ({path})", limits.max_pixels)
    return data


def segment_references(
    board: Storyboard, folder: Path, sheets: Sequence[Sequence[Mapping[str, str]]] = ()
) -> list[list[Reference]]:
    """Each segment's references (one list per segment), chosen and described as film QA chooses and describes them
    (``reelforge_qa.references``): per character its ``reference_image``, else its cast sheet; its location's sheet.

    A ``reference_image`` is a local file, read relative to ``folder`` (the storyboard's); a URL is refused
    (``reelforge qa`` fetches nothing). ``sheets``: per segment, the cast sheets it was conditioned on (``kind``,
    ``name``, ``image``: a local file), as a ``reelforge run`` folder lists them. Each image is read and checked
    (:func:`read_image`) once, when a segment wants it.
    """
    from reelforge_qa.references import References, wanted_references
    from reelforge_shared.storyboard import parse_storyboard

    data, labels = board.model_dump(mode="json"), {}
    shown = {name for seg in board.segments for name in seg.characters}
    for name, character in data["characters"].items():
        if name in shown and (ref := character.get("reference_image")):
            field = f"characters.{name}.reference_image"
            if "://" in ref:
                raise InvalidInput(f"{field}: {ref!r} is a URL; reelforge qa reads only local files")
            character["reference_image"] = str((folder / ref).resolve())
            labels[character["reference_image"]] = field
    images = set(labels)
    labels |= {s["image"]: f"the cast sheet of {s['kind']} {s['name']}" for row in sheets for s in row}
    board = parse_storyboard(data)
    described = References(lambda image: read_image(Path(image), labels[image]))
    every = [s for row in sheets for s in row]
    rows = sheets or [[] for _ in board.segments]
    return [
        described.get(wanted_references("", board, n, [*row, *every], own=images.__contains__))
        for n, row in enumerate(rows, start=1)
    ]


def _fail(message: str, code: int) -> typer.Exit:
    # One line, as given: a path in the message is not folded by the terminal's width (nor read as markup).
    console.print(message, style="red", markup=False, soft_wrap=True)
    return typer.Exit(code)


def run_folder(out: Path) -> tuple[list[Path], Path, Path | None, list[list[dict[str, str]]]]:
    """What a ``reelforge run`` folder holds to check: (segment videos, storyboard, film or None, cast sheets per
    segment as :func:`segment_references` takes them), read from its report.json; bad input (exit 2) when it holds no
    run or a segment was not delivered."""
    from reelforge_gateway.timeline.sources import OUT_STORYBOARD

    try:
        report = json.loads((out / "report.json").read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"{out} holds no `reelforge run` (its report.json: {exc})", 2) from None
    if missing := [f"{s['index']} ({s['id']})" for s in report["segments"] if not s.get("file")]:
        raise _fail(f"{out}: segment {', '.join(missing)} not delivered, nothing to check", 2)
    sheets = [
        [{"kind": c["kind"], "name": c["name"], "image": str(out / c["file"])} for c in s.get("cast_sheet", []) if c.get("file")]
        for s in report["segments"]
    ]
    film = out / "final.mp4"
    return [out / s["file"] for s in report["segments"]], out / OUT_STORYBOARD, film if film.is_file() else None, sheets


def build_report(
    videos: list[Path],
    storyboard: Path | None = None,
    film: Path | None = None,
    embedding_model: str | None = None,
    sheets: Sequence[Sequence[Mapping[str, str]]] = (),
) -> JobReport:
    """The job report ``reelforge qa`` prints: segments with their gates, ``film_qa``, gate failure counts.

    With a storyboard, ``film_qa.references`` scores each segment against its references (:func:`segment_references`:
    the storyboard's ``reference_image`` files, ``sheets``)."""
    from reelforge_qa.config import QaSettings
    from reelforge_qa.film_checks import check_film
    from reelforge_qa.job_report import JobReport, attempt_result, segment_result
    from reelforge_qa.scores import score_video

    settings = QaSettings()
    expected, plan, title, board = _plan(videos, storyboard)
    references = segment_references(board, storyboard.parent, sheets) if board is not None and storyboard is not None else None
    model = embedding_model or settings.qa_embedding_model
    embedder = None
    if model:
        from reelforge_qa.embeddings import ClipEmbedder

        embedder = ClipEmbedder(model)
    reports = [score_video(v, e, settings.thresholds(), settings.sample_frames) for v, e in zip(videos, expected, strict=True)]
    film_qa = check_film(plan, settings.film_thresholds(), film=film, embedder=embedder, references=references)
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
    videos: Annotated[list[Path], typer.Argument(help="segment videos in film order, or one `reelforge run` output folder")],
    storyboard: Annotated[
        Path | None,
        typer.Option(
            help="storyboard YAML or JSON: one segment per video; its characters' reference_image files (relative to "
            "its folder) are scored against (default for a run folder: its storyboard.json)"
        ),
    ] = None,
    film: Annotated[
        Path | None,
        typer.Option(
            help="the compiled film: joins are read there (dissolves, flash frames; default for a run folder: final.mp4)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON on stdout")] = False,
    html: Annotated[Path | None, typer.Option(help="also write the report as self-contained HTML here")] = None,
    embedding_model: Annotated[
        str | None, typer.Option(help="local CLIPModel folder (default REELFORGE_QA_EMBEDDING_MODEL)")
    ] = None,
) -> None:
    """Score local videos with every QA gate and the film checks (continuity, joins, against the references); exit 1
    when any fails (the references fail nothing: a score under the continuity threshold is marked below)."""
    sheets: list[list[dict[str, str]]] = []
    hint = ""
    if len(videos) == 1 and videos[0].is_dir():  # a run folder: its segments, storyboard, film and cast sheets
        videos, board, final, sheets = run_folder(videos[0])
        if storyboard is None:
            hint = f" ({board} names it as the storyboard the run was given did: give that one with --storyboard)"
        storyboard, film = storyboard or board, film or final
    missing = [str(v) for v in [*videos, *([film] if film else [])] if not v.is_file()]
    if missing:
        raise _fail(f"no such file: {', '.join(missing)}", 2)
    try:
        report = build_report(videos, storyboard, film, embedding_model, sheets)
    except InvalidInput as exc:
        raise _fail(f"{exc}{hint if '.reference_image' in str(exc) else ''}", 2) from None
    if as_json:
        json.dump(report.model_dump(mode="json"), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for seg in report.segments:
            state = "[green]passed[/green]" if seg.qa_passed else f"[red]failed: {', '.join(seg.qa_failed_gates)}[/red]"
            console.print(f"{seg.id}: {state}  " + " ".join(f"{n} {s:.2f}" for n, s in seg.qa.items()))
        if report.film_qa and report.film_qa.references:
            console.print(f"against the references (report-only, under {report.film_qa.threshold} marked below):")
        for ref in report.film_qa.references if report.film_qa else []:
            score = "-" if ref.score is None else f"{ref.score:.2f}"
            mark = " [yellow]below[/yellow]" if ref.below else (" (not compared)" if ref.score is None else "")
            console.print(f"{ref.segment_id}: {ref.kind} {ref.name} against its {ref.source.replace('_', ' ')} {score}{mark}")
        for line in report.film_qa.failures if report.film_qa else []:
            console.print(f"[red]{line}[/red]")
        console.print("[green]passed[/green]" if report.passed else "[red]failed[/red]")
    if html is not None:
        from reelforge_qa.report_html import render_html, thumbnail_strip

        thumbs = {seg.id: thumbnail_strip(Path(seg.path)) for seg in report.segments if seg.path}
        html.write_text(render_html(report, thumbs), encoding="utf-8")
    raise typer.Exit(0 if report.passed else 1)
