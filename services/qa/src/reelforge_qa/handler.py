"""QA handlers.

- SegmentEncoded: score the MP4 read back from S3; a segment failing a quality gate goes back to the
  generator with a new seed (SegmentRequested, attempt + 1) until REELFORGE_QA_MAX_ATTEMPTS, then it
  is passed on (SegmentChecked) with its failures flagged.
- FilmEncoded: continuity and joins over the whole film, then the job report (JSON and HTML) in S3
  and FilmChecked for the uploader.

Reports are stored under deterministic keys and checked first, so a redelivery re-announces them.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelforge_qa.descriptors import describe
from reelforge_qa.film_checks import FilmThresholds, check_film
from reelforge_qa.film_plan import FilmCheckPlan, plan_film_check
from reelforge_qa.film_regenerate import ContinuityRedo, continuity_redos, middle_frame_png
from reelforge_qa.gates import RERENDER_GATES, Thresholds
from reelforge_qa.job_report import DeliveredAttempt, Regeneration, build_job_report, check_scores, delivered_attempts
from reelforge_qa.references import Reference, References, score_reference, wanted_references
from reelforge_qa.regenerate import decide
from reelforge_qa.report_html import render_html, thumbnail_strip
from reelforge_qa.scores import Expected, score_video
from reelforge_qa.segment_film_stats import SegmentFilmStats, film_packets, segment_film_stats
from reelforge_shared.chain import regenerated
from reelforge_shared.events import (
    Event,
    FilmChecked,
    FilmEncoded,
    QaReport,
    ReferenceScore,
    SegmentChecked,
    SegmentEncoded,
    SegmentRequested,
    SegmentRerenderRequested,
    StartFrame,
)
from reelforge_shared.metrics import QA_GATES
from reelforge_shared.shots import keep_passed_shot
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore, ReadOnce
from reelforge_shared.storyboard import Storyboard, parse_storyboard

PARSE_THREADS = 8  # the segments' kept statistics read and unpacked side by side (reads wait; zlib is off the GIL)


@dataclass(kw_only=True, slots=True)
class QaDeps:
    store: ObjectStore
    bucket: str
    thresholds: Thresholds
    sample_frames: int = 24
    max_attempts: int = 2
    film_thresholds: FilmThresholds | None = None
    embedder: Any = None  # reelforge_qa.embeddings.ClipEmbedder when REELFORGE_QA_EMBEDDING_MODEL is set


def handle(event: SegmentEncoded, deps: QaDeps) -> list[Event]:
    """Score the segment (unless its report is stored), then regenerate it or pass it on."""
    job, n = event.job_id, event.index
    report_key = Keys.segment_qa(job, n, event.attempt, event.take)
    if deps.store.exists(deps.bucket, report_key):
        report = QaReport.model_validate(deps.store.get_json(deps.bucket, report_key))
    else:
        with tempfile.TemporaryDirectory(prefix="reelforge-qa-") as tmp:
            video = deps.store.get_file(deps.bucket, event.video_key, Path(tmp, "segment.mp4"))
            expected = Expected(event.width, event.height, event.fps, event.frame_count, event.has_audio)
            began = time.perf_counter()
            report = score_video(video, expected, deps.thresholds, deps.sample_frames)
            stats = segment_film_stats(video, deps.film_thresholds.sample_frames if deps.film_thresholds else 8)
            deps.store.put_bytes(deps.bucket, Keys.segment_film_stats(job, n, event.attempt, event.take), stats.to_bytes())
            report = report.model_copy(update={"references": take_references(deps, event, stats)})
            report.measured["qa_s"] = round(time.perf_counter() - began, 2)
        deps.store.put_json(deps.bucket, report_key, report.model_dump(mode="json"))
        for gate_name, gate in report.gates.items():  # counted once per scored attempt (a stored report is not rescored)
            QA_GATES.labels(gate_name, "pass" if gate.passed else "fail").inc()
    # A take that fails a gate is not rendered again: the segment's other takes are its alternatives.
    max_attempts = deps.max_attempts if event.takes == 1 else event.attempt
    decision = decide(report, event.attempt, max_attempts, gates=RERENDER_GATES)
    if decision.action == "regenerate" and decision.next_attempt is not None:
        board = parse_storyboard(deps.store.get_json(deps.bucket, Keys.storyboard(job)))
        spec = render_spec(board, n, decision.next_attempt)
        generation = Keys.segment_generation(job, n, event.attempt)  # a continued shot starts from the same frame again
        if deps.store.exists(deps.bucket, generation) and (
            start := deps.store.get_json(deps.bucket, generation).get("start_frame")
        ):
            spec = spec.model_copy(update={"start_frame": StartFrame.model_validate(start)})
        # A shot that continues from the one before it: from that one's newest last frame, and not at all when its
        # frames asked for a later attempt of this one already (reelforge_shared.chain).
        request = regenerated(
            deps.store, deps.bucket, SegmentRequested.retry(event, decision.next_attempt, spec=spec, model=event.model.name)
        )
        return [request] if request is not None else []  # None: that later attempt renders, and is checked, instead
    keep_passed_shot(deps.store, deps.bucket, event, report.passed)  # passed its gates: reusable by its owner's next jobs
    checked = {"model": event.model.model_dump(mode="json"), "duration_s": event.duration_s, "takes": event.takes}
    deps.store.put_json(deps.bucket, Keys.segment_checked(job, n, event.attempt, event.take), checked)  # film QA reads it
    return [
        SegmentChecked.follow(
            event,
            video_key=event.video_key,
            duration_s=event.duration_s,
            qa=report,
            report_key=report_key,
            model=event.model,
        )
    ]


def _read(store: ObjectStore, bucket: str) -> Callable[[str], bytes | None]:
    return lambda key: store.get_bytes(bucket, key) if store.exists(bucket, key) else None


def take_references(deps: QaDeps, event: SegmentEncoded, stats: SegmentFilmStats) -> list[ReferenceScore]:
    """The segment's (take's) continuity against the job's cast and location references: the characters' reference
    images, the cast sheets its render was conditioned on (reelforge_qa.references)."""
    job, n = event.job_id, event.index
    board = parse_storyboard(deps.store.get_json(deps.bucket, Keys.storyboard(job)))
    generation_key = Keys.segment_generation(job, n, event.attempt, event.take)
    generation = deps.store.get_json(deps.bucket, generation_key) if deps.store.exists(deps.bucket, generation_key) else {}
    wanted = wanted_references(job, board, n, generation.get("cast_sheet") or [])
    refs = References(_read(deps.store, deps.bucket)).get(wanted)
    return [score_reference(r, stats.subject, stats.descriptor or describe(stats.sample.frames)) for r in refs]


def handle_film(event: FilmEncoded, deps: QaDeps) -> list[Event]:
    """Check the film as a whole and write the job report (unless it is stored); ask again for segments whose continuity
    broke, and pass the film on."""
    board = parse_storyboard(deps.store.get_json(deps.bucket, Keys.storyboard(event.job_id)))
    plan = plan_film_check(event, board)
    if deps.store.exists(deps.bucket, plan.report_key):
        report, meta = deps.store.get_json(deps.bucket, plan.report_key), _meta(deps.store, deps.bucket, plan.meta_key)
    else:
        report, meta = check_and_report(plan, event, board, deps)
    # Continuity drives regeneration: the same path as the API's re-render of one segment (a new film version).
    # The event id is fixed per film version and segment, so a redelivered film.encoded asks once.
    redos: list[Event] = [
        SegmentRerenderRequested.follow(
            event,
            event_id=f"{plan.job_id}-v{event.version}-continuity-{r['index']:03d}",
            index=r["index"],
            reason=r["reason"],
            seed=r.get("seed") or render_spec(board, r["index"], event.delivered_attempt(r["index"]) + 1).seed,
            reference_images=[r["reference_key"]] if r.get("reference_key") else [],
        )
        for r in report.get("regenerations", [])
        if r["requested_in_version"] == event.version
    ]
    return redos + [
        FilmChecked.follow(
            event,
            film_key=event.film_key,
            duration_s=event.duration_s,
            frame_count=event.frame_count,
            fps=event.fps,
            width=event.width,
            height=event.height,
            passed=bool((report.get("film_qa") or {}).get("passed")),
            deliverables=dict(meta.get("deliverables") or {}),
            report_key=plan.report_key,
            report_html_key=plan.html_key,
        )
    ]


def check_and_report(plan: FilmCheckPlan, event: FilmEncoded, board: Storyboard, deps: QaDeps) -> tuple[dict, dict]:
    """Execute the plan: read what it names side by side while the film downloads, check the film (from the segments'
    kept statistics when all are kept: then no segment is decoded again, and the film only around its joins), and
    write the report, the HTML first: the JSON marks it done. Returns the report and the film's metadata."""
    with (
        tempfile.TemporaryDirectory(prefix="reelforge-qa-film-") as tmp,
        ThreadPoolExecutor(max_workers=3) as pool,
        ThreadPoolExecutor(max_workers=PARSE_THREADS) as parse,
    ):
        # the film's packets are digested as it downloads (a demux of the arriving bytes), beside the reads and checks
        film = Path(tmp, "final.mp4")
        film_download = pool.submit(deps.store.get_file_reading, deps.bucket, plan.film_key, film, film_packets)
        reading = pool.submit(ReadOnce.read, deps.store, deps.bucket, plan.reads)
        # zlib lets go of the GIL: the segments' .npz files are read and unpacked side by side, each as it arrives, while
        # the report's reads are made and the film downloads
        kept = list(parse.map(lambda key: _kept_stats(deps, key), plan.stats_keys))
        stats = [k for k in kept if k is not None] if kept and all(kept) else None
        store = reading.result()
        segments = [dataclasses.replace(s, path=Path(tmp, s.path)) for s in plan.segments]
        if stats is None:
            list(pool.map(lambda s, key: deps.store.get_file(deps.bucket, key, s.path), segments, plan.video_keys))
        references = film_references(plan, board, store, deps)
        film_qa = check_film(
            segments,
            deps.film_thresholds,
            film=film,
            packets=lambda: film_download.result()[1],
            embedder=deps.embedder,
            stats=stats,
            references=references,
        )
        if stats is not None:
            thumbnails = {s.segment_id: st.strip for s, st in zip(segments, stats, strict=True)}
        else:
            thumbnails = {s.segment_id: thumbnail_strip(s.path) for s in segments}
    job_report = build_job_report(store, deps.bucket, event, film_qa)
    delivered = {t.index: t for t in delivered_attempts(store, deps.bucket, event, board)}
    attempts = {t.segment_id: t.attempt for t in delivered.values()}
    scores, index_of = check_scores(film_qa), plan.index_of
    job_report.regenerations += [
        _regeneration(deps, plan.job_id, board, delivered, index_of, r, event.version, scores.get(r.check))
        for r in continuity_redos(film_qa, attempts, deps.max_attempts)
        # A random-weights model renders noise: no new seed makes it continuous (the tests' and demo's tiny models).
        if not (delivered[index_of[r.segment_id]].model or {}).get("random_weights")
    ]
    report = job_report.model_dump(mode="json")
    drawn = ReadOnce.read(deps.store, deps.bucket, [c.image for c in job_report.cast_sheet]).found  # side by side
    sheets = {c.key: image for c in job_report.cast_sheet if (image := drawn[c.image]) is not None}
    html = render_html(job_report, thumbnails, sheets)
    deps.store.put_bytes(deps.bucket, plan.html_key, html.encode(), "text/html; charset=utf-8")
    deps.store.put_json(deps.bucket, plan.report_key, report)
    return report, _meta(store, deps.bucket, plan.meta_key)


def _kept_stats(deps: QaDeps, key: str) -> SegmentFilmStats | None:
    """What segment QA kept of a segment for the film check; None when it kept nothing (an older QA)."""
    return SegmentFilmStats.from_bytes(deps.store.get_bytes(deps.bucket, key)) if deps.store.exists(deps.bucket, key) else None


def film_references(
    plan: FilmCheckPlan, board: Storyboard, store: ReadOnce, deps: QaDeps
) -> list[list[Reference | ReferenceScore]]:
    """Each segment's references, in film order (a re-cut's entries): its characters' reference images, else their cast
    sheets, and its location's sheet; a sheet drawn for any segment of the film serves every segment showing that
    character or location (the segment's own first). Where segment QA scored the delivered take against the same image
    its score is taken as it is (the same statistics against the same image: the same figure), so the film's tail
    describes only the images no take was scored against, each once."""
    generations, kept = [], []
    for n, (attempt, take) in enumerate(zip(plan.attempts, plan.takes, strict=True), start=1):
        key, qa_key = Keys.segment_generation(plan.job_id, n, attempt, take), Keys.segment_qa(plan.job_id, n, attempt, take)
        generations.append(store.get_json(deps.bucket, key) if store.exists(deps.bucket, key) else {})
        qa = QaReport.model_validate(store.get_json(deps.bucket, qa_key)) if store.exists(deps.bucket, qa_key) else None
        kept.append({(r.kind, r.name, r.image): r for r in (qa.references if qa else [])})
    every = [sheet for g in generations for sheet in g.get("cast_sheet") or []]
    described = References(_read(store, deps.bucket))
    out: list[list[Reference | ReferenceScore]] = []
    for n, (generation, scored) in enumerate(zip(generations, kept, strict=True), start=1):
        wanted = wanted_references(plan.job_id, board, n, [*(generation.get("cast_sheet") or []), *every])
        row: list[Reference | ReferenceScore] = []
        for w in wanted:
            known = scored.get((w.kind, w.name, w.image))
            row.extend([known] if known is not None else described.get([w]))
        out.append(row)
    return [out[n - 1] for n in plan.indices]  # in film order (a re-cut's entries)


def _regeneration(
    deps: QaDeps,
    job: str,
    board: Storyboard,
    delivered: dict[int, DeliveredAttempt],
    index_of: dict[str, int],
    redo: ContinuityRedo,
    version: int,
    before: float | None,
) -> Regeneration:
    """The report's entry for a continuity re-render, with its reference: the best-matching segment's middle frame.

    That is the encoder's still of the segment where it made one, else the frame decoded here and stored (once).
    """
    n = index_of[redo.segment_id]
    attempt = delivered[n].attempt + 1  # the attempt the re-render makes (the ledger counts the same way)
    reference_key = None
    if redo.reference is not None:
        video_key = delivered[index_of[redo.reference]].video_key
        reference_key = Keys.segment_thumbnail(video_key)
        if not deps.store.exists(deps.bucket, reference_key):
            reference_key = Keys.continuity_reference(job, n, attempt)
        if not deps.store.exists(deps.bucket, reference_key):
            with tempfile.TemporaryDirectory(prefix="reelforge-qa-reference-") as tmp:
                video = deps.store.get_file(deps.bucket, video_key, Path(tmp, "ref.mp4"))
                deps.store.put_bytes(deps.bucket, reference_key, middle_frame_png(video), "image/png")
    return Regeneration(
        index=n,
        segment_id=redo.segment_id,
        check=redo.check,
        reason=redo.reason,
        requested_in_version=version,
        before=before,
        segment_before={c: round(v, 4) for c, v in redo.broken.items()},
        seed=render_spec(board, n, attempt).seed,
        reference_segment_id=redo.reference,
        reference_key=reference_key,
    )


def _meta(store: ObjectStore, bucket: str, key: str) -> dict[str, Any]:
    """The encoder's metadata of the film (its deliverables' keys under ``deliverables``); empty when it wrote none."""
    return dict(store.get_json(bucket, key)) if store.exists(bucket, key) else {}
