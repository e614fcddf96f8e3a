"""The job report: one versioned pydantic model, built here and only here (report.json, report.html, ``reelforge qa``).

Every segment carries its gates with their thresholds and details, what each attempt scored (so a
regenerated segment shows before and after), the prompt it was rendered from and its timings;
the film carries its continuity and join report (:class:`FilmQaReport`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from reelforge_qa.film_models import FilmQaReport
from reelforge_qa.film_regenerate import segment_score
from reelforge_shared.events import FilmEncoded, FilmEvent, QaReport, ReferenceScore, ReusedFrom, StartFrame
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, parse_storyboard
from reelforge_shared.takes import checked_takes, rank_takes, take_score


class GateResult(BaseModel):
    score: float
    threshold: float
    passed: bool
    detail: str = ""


class AttemptResult(BaseModel):
    """What QA said about one attempt at a segment."""

    attempt: int
    passed: bool
    failed_gates: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)


class Timings(BaseModel):
    """Seconds each stage took for the delivered attempt (None: not measured by that stage)."""

    render_s: float | None = None
    s_per_frame: float | None = Field(None, description="render seconds per frame (the generator's last run)")
    encode_s: float | None = None
    qa_s: float | None = None
    peak_vram_bytes: int | None = None


class TakeResult(BaseModel):
    """One take of a segment with several (reelforge_shared.takes): what it was rendered from, its scores, its verdict."""

    take: int
    seed: int | None = None
    prompt: str | None = Field(None, description="the prompt as the model got it (a variant's prompt for a variant)")
    variant: bool = Field(False, description="rendered from one of the segment's variants (take 0: its prompt)")
    shot_key: str | None = None
    reused_from: ReusedFrom | None = None
    passed: bool
    scores: dict[str, float]
    failed_gates: list[str] = Field(default_factory=list)
    mean_score: float = Field(description="mean of its gate scores")
    continuity: float | None = Field(
        None, description="mean continuity against the job's cast and location references (None: nothing it shows has one)"
    )
    references: list[ReferenceScore] = Field(default_factory=list, description="each reference it was scored against")
    take_score: float = Field(
        0.0, description="the policy's second key: mean gate score, weighed with continuity when every take has one"
    )
    in_film: bool = Field(description="this take is the segment's in this film version")
    reason: str = Field(description="why it won or lost")
    video_key: str | None = None


class CastSheetImage(BaseModel):
    """A cast sheet image the film's segments were conditioned on (issue 18 point 6; reelforge_generator.cast)."""

    kind: Literal["character", "location"]
    name: str
    key: str = Field(description="its shot key")
    image: str = Field(description="work-bucket key of the image (the job's copy)")


class SegmentResult(BaseModel):
    index: int
    id: str
    status: str = "delivered"
    attempt: int = 1
    prompt: str | None = Field(None, description="the prompt the delivered attempt was rendered from, as the model got it")
    prompt_tokens: int | None = Field(None, description="its tokens, counted with the model's own tokenizer")
    prompt_tokens_dropped: int | None = Field(None, description="tokens the model did not see (0: encoded whole)")
    degraded: str | None = Field(None, description="what the generator gave up to finish (smaller batch, lower size)")
    shot_key: str | None = Field(None, description="SHA-256 of the canonical render spec (reelforge_shared.shots)")
    reused_from: ReusedFrom | None = Field(None, description="set: not rendered, the frames of this earlier render reused")
    start_frame: StartFrame | None = Field(
        None, description="set (start_from: previous): the frame of the segment before that this one continues from"
    )
    seed: int | None = Field(None, description="the seed the delivered attempt was rendered with")
    model: str | None = Field(None, description="the model that rendered it")
    cast_sheet: list[CastSheetImage] = Field(default_factory=list, description="the cast sheet images it was conditioned on")
    qa_passed: bool
    gates: dict[str, GateResult]
    qa_history: list[AttemptResult] = Field(default_factory=list)
    duration_s: float | None = None
    characters: list[str] = Field(default_factory=list)
    location: str | None = None
    timings: Timings = Field(default_factory=Timings)
    video_key: str | None = None
    delivery_key: str | None = None
    path: str | None = Field(None, description="the local file (reelforge qa)")
    take: int = Field(0, description="the take in the film (reelforge_shared.takes)")
    takes: list[TakeResult] = Field(default_factory=list, description="every take, for a segment with several")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def qa(self) -> dict[str, float]:
        return {name: gate.score for name, gate in self.gates.items()}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def qa_failed_gates(self) -> list[str]:
        return [name for name, gate in self.gates.items() if not gate.passed]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def source(self) -> Literal["rendered", "reused"]:
        """Whether this job rendered the segment's frames or reused an earlier render's (``reused_from`` says whose)."""
        return "reused" if self.reused_from is not None else "rendered"


class FilmInfo(BaseModel):
    key: str
    delivery_key: str | None = None
    version: int = Field(1, description="film version: a re-rendered segment makes a new one")
    duration_s: float
    frame_count: int
    fps: float
    width: int
    height: int


class Regeneration(BaseModel):
    """A segment rendered again because it broke continuity: the check's score before and after."""

    index: int
    segment_id: str
    check: str = Field(description="kind:name of the continuity check it broke, e.g. character:hero")
    reason: str
    requested_in_version: int
    before: float | None = Field(None, description="the check's score in the film version that asked for it")
    after: float | None = Field(None, description="the check's score in the next version (None: not made yet)")
    segment_before: dict[str, float] = Field(
        default_factory=dict,
        description="every check the segment broke -> its own worst judged pair there "
        "(light: its score against the location's median), in the version that asked",
    )
    segment_after: dict[str, float | None] = Field(
        default_factory=dict, description="the same checks in the next version (empty: not made yet; None: not judged)"
    )
    seed: int | None = Field(None, description="the new seed asked for")
    reference_segment_id: str | None = Field(None, description="the best-matching segment whose frame steers the new render")
    reference_key: str | None = Field(None, description="work-bucket key of that frame (Keys.continuity_reference)")


class SegmentChange(BaseModel):
    """A segment that differs from the film version before: what changed, why, and whether it was rendered for it."""

    index: int
    segment_id: str
    change: Literal["shot", "take", "added"] = Field(
        description="shot: its shot key changed (a new render or a reused one); take: another take of the same "
        "render put in the film (no render); added: a segment the version before did not have"
    )
    before_shot_key: str | None = None
    after_shot_key: str | None = None
    before: str | None = Field(None, description="attempt and take in the version before, e.g. 'attempt 1, take 0'")
    after: str | None = Field(None, description="attempt and take now")
    changed_fields: list[str] = Field(
        default_factory=list, description="render-spec fields that differ from the version before (prompt, seed, frames, ...)"
    )
    why: str = Field(description="in words: the edit, the re-render or the selection that made the change")
    source: Literal["rendered", "reused"] = Field(description="rendered for this version, or reused from an earlier render")
    reused_from: ReusedFrom | None = None


class CutPlacement(BaseModel):
    """One entry of a film version re-cut from an editor's timeline (``events.CutEntry``), and where it lies in the film."""

    index: int
    segment_id: str
    attempt: int
    take: int = 0
    source_in: int = Field(description="first frame of the render's media used (handles included)")
    source_out: int = Field(description="the frame after the last one used")
    transition: str = Field("cut", description="into this entry: cut, dissolve, fade")
    transition_frames: int = 0
    start: int = Field(description="film frame where it starts")
    frames: int = Field(description="film frames it lasts")


def cut_placements(film: FilmEvent, board: Storyboard) -> list[CutPlacement]:
    """The film event's cut (empty: the storyboard's order, whole segments) with each entry's place in the film."""
    placed, start = [], 0
    for e in film.cut:
        frames = e.source_out - e.source_in
        fields = e.model_dump() | {"segment_id": board.segments[e.index - 1].id, "start": start, "frames": frames}
        placed.append(CutPlacement(**fields))
        start += frames
    return placed


class JobReport(BaseModel):
    """report.json."""

    schema_version: Literal[1] = 1
    job_id: str | None = None
    title: str | None = None
    model: dict[str, Any] | None = None
    film: FilmInfo | None = None
    segments: list[SegmentResult]
    film_qa: FilmQaReport | None = None
    regenerations: list[Regeneration] = Field(default_factory=list, description="continuity-driven, with before and after")
    changes: list[SegmentChange] = Field(
        default_factory=list,
        description="film version 2 and later: the segments that differ from the version before, and why "
        "(unchanged ones are not listed)",
    )
    previous_version: int | None = Field(None, description="the film version ``changes`` compares with")
    cut: list[CutPlacement] = Field(
        default_factory=list,
        description="the version's cut when an editor's timeline re-cut it (film order, trims, removals, earlier "
        "attempts): film QA checked these entries in this order; empty: the storyboard's order, whole segments",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cast_sheet(self) -> list[CastSheetImage]:
        """Every cast sheet image the film's segments were conditioned on, once each, in film order."""
        seen: dict[str, CastSheetImage] = {}
        for seg in self.segments:
            for sheet in seg.cast_sheet:
                seen.setdefault(sheet.key, sheet)
        return list(seen.values())

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rendered(self) -> list[int]:
        """Segments whose frames this job rendered."""
        return [s.index for s in self.segments if s.source == "rendered"]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reused(self) -> list[int]:
        """Segments whose frames were reused from an earlier render (this job's or another of the same owner)."""
        return [s.index for s in self.segments if s.source == "reused"]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gate_failures(self) -> dict[str, int]:
        """Failures per gate over every attempt of every segment."""
        counts: Counter[str] = Counter()
        for seg in self.segments:
            for attempt in seg.qa_history or [
                AttemptResult(attempt=seg.attempt, passed=seg.qa_passed, failed_gates=seg.qa_failed_gates)
            ]:
                counts.update(attempt.failed_gates)
        return dict(counts)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return all(s.qa_passed for s in self.segments) and (self.film_qa is None or self.film_qa.passed)


def segment_result(index: int, segment_id: str, qa: QaReport, **fields: Any) -> SegmentResult:
    """A segment's entry from its QA report (the delivered attempt's)."""
    gates = {name: GateResult(**gate.model_dump()) for name, gate in qa.gates.items()}
    return SegmentResult(index=index, id=segment_id, qa_passed=qa.passed, gates=gates, **fields)


def attempt_result(attempt: int, qa: QaReport) -> AttemptResult:
    return AttemptResult(
        attempt=attempt,
        passed=qa.passed,
        failed_gates=[n for n, g in qa.gates.items() if not g.passed],
        scores={n: g.score for n, g in qa.gates.items()},
    )


def segment_history(
    store: ObjectStore, bucket: str, job_id: str, index: int, last_attempt: int, take: int = 0
) -> list[AttemptResult]:
    """What QA said at each attempt of a segment (attempts whose report is missing are skipped)."""
    history = []
    for attempt in range(1, last_attempt + 1):
        key = Keys.segment_qa(job_id, index, attempt, take)
        if store.exists(bucket, key):
            history.append(attempt_result(attempt, QaReport.model_validate(store.get_json(bucket, key))))
    return history


def _generation(store: ObjectStore, bucket: str, job_id: str, index: int, attempt: int, take: int = 0) -> dict[str, Any]:
    """The generator's record of an attempt: the prompt as the model got it, token counts, render figures."""
    key = Keys.segment_generation(job_id, index, attempt, take)
    return store.get_json(bucket, key) if store.exists(bucket, key) else {}


def _timings(
    store: ObjectStore, bucket: str, job_id: str, slot: tuple[int, int, int], qa: QaReport, generation: dict[str, Any]
) -> Timings:
    key = Keys.segment_timings(job_id, *slot)
    stored = store.get_json(bucket, key) if store.exists(bucket, key) else {}
    stored |= {k: generation[k] for k in ("render_s", "s_per_frame", "peak_vram_bytes") if generation.get(k) is not None}
    qa_s = qa.measured.get("qa_s")
    return Timings(**stored, qa_s=float(qa_s) if isinstance(qa_s, int | float) else None)


def take_results(
    store: ObjectStore, bucket: str, job_id: str, slot: tuple[int, int, int], count: int, *, variants: bool = False
) -> list[TakeResult]:
    """Every checked take of a segment with several (``slot``: index, attempt, the take in the film), with its verdict."""
    if count == 1:
        return []
    n, attempt, in_film = slot
    checked = checked_takes(store, bucket, job_id, n, attempt, count)
    verdicts = rank_takes({k: take_score(qa) for k, qa in checked.items()})
    both = all(qa.continuity is not None for qa in checked.values())
    best = next(k for k, v in verdicts.items() if v.won)
    results = []
    for k, qa in sorted(checked.items()):
        generated, score = _generation(store, bucket, job_id, n, attempt, k), take_score(qa)
        reason = verdicts[k].reason
        if k == in_film != best:
            reason = f"selected instead of take {best} (the policy's choice)"
        elif k == best != in_film:
            reason = f"{reason}; take {in_film} selected instead"
        results.append(
            TakeResult(
                take=k,
                seed=generated.get("seed"),
                prompt=generated.get("prompt"),
                variant=variants and k > 0,
                shot_key=generated.get("shot_key"),
                reused_from=generated.get("reused_from"),
                passed=qa.passed,
                scores=dict(score.scores),
                failed_gates=list(score.failed),
                mean_score=round(score.mean, 4),
                continuity=qa.continuity,
                references=list(qa.references),
                take_score=round(score.score(both), 4),
                in_film=k == in_film,
                reason=reason,
                video_key=Keys.segment_video(job_id, n, attempt, k),
            )
        )
    return results


def check_scores(film_qa: FilmQaReport | None) -> dict[str, float | None]:
    """Every continuity check's score by ``kind:name``."""
    if film_qa is None:
        return {}
    return {f"{c.kind}:{c.name}": c.score for c in (*film_qa.characters, *film_qa.locations, *film_qa.light)}


def _earlier_regenerations(
    store: ObjectStore, bucket: str, job_id: str, version: int, film_qa: FilmQaReport | None
) -> list[Regeneration]:
    """What earlier film versions asked for again, with the check's score now as ``after``."""
    if version <= 1 or not store.exists(bucket, Keys.report(job_id, version - 1)):
        return []
    earlier = JobReport.model_validate(store.get_json(bucket, Keys.report(job_id, version - 1)))
    now = check_scores(film_qa)
    return [
        r
        if r.after is not None
        else r.model_copy(
            update={
                "after": now.get(r.check),
                "segment_after": {c: segment_score(film_qa, c, r.segment_id) if film_qa else None for c in r.segment_before},
            }
        )
        for r in earlier.regenerations
    ]


def _placed(attempt: int, take: int) -> str:
    return f"attempt {attempt}, take {take}"


def _spec_fields(before: Storyboard, after: Storyboard, old: SegmentResult, new: SegmentResult) -> list[str]:
    """Render-spec fields of segment ``new.index`` that differ between the two storyboards' attempts and takes."""
    a = render_spec(before, old.index, old.attempt, old.take).model_dump(mode="json")
    b = render_spec(after, new.index, new.attempt, new.take).model_dump(mode="json")
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def version_changes(
    store: ObjectStore,
    bucket: str,
    job_id: str,
    version: int,
    board: Storyboard,
    segments: list[SegmentResult],
    recut: bool = False,
) -> tuple[int | None, list[SegmentChange]]:
    """(the version compared with, the segments that differ from it): by shot key, attempt and take, with why.

    The version before is read from its report.json; the storyboard it was made from is the one kept at
    ``Keys.storyboard_version`` when a new storyboard replaced it (else the job's own). Unchanged segments
    (same shot key, attempt and take) are not listed.
    """
    if version <= 1 or not store.exists(bucket, Keys.report(job_id, version - 1)):
        return None, []
    before = JobReport.model_validate(store.get_json(bucket, Keys.report(job_id, version - 1)))
    kept = Keys.storyboard_version(job_id, version - 1)
    old_board = parse_storyboard(store.get_json(bucket, kept)) if store.exists(bucket, kept) else board
    earlier = {s.index: s for s in before.segments}
    redone = {r.index: r for r in before.regenerations}
    changes = []
    for seg in segments:
        old = earlier.get(seg.index)
        common: dict[str, Any] = {
            "index": seg.index,
            "segment_id": seg.id,
            "after_shot_key": seg.shot_key,
            "after": _placed(seg.attempt, seg.take),
            "source": seg.source,
            "reused_from": seg.reused_from,
        }
        if old is None:
            changes.append(SegmentChange(change="added", why="a segment the version before did not have", **common))
            continue
        if (old.shot_key, old.attempt, old.take) == (seg.shot_key, seg.attempt, seg.take):
            continue
        common |= {"before_shot_key": old.shot_key, "before": _placed(old.attempt, old.take)}
        if old.attempt == seg.attempt and old.take != seg.take:
            why = f"take {seg.take} selected in place of take {old.take}: already rendered, nothing rendered again"
            changes.append(SegmentChange(change="take", why=why, **common))
            continue
        fields = _spec_fields(old_board, board, old, seg) if old.index <= len(old_board.segments) else []
        if recut and seg.attempt < old.attempt:
            why = f"attempt {seg.attempt} put back in the film by an editor's cut: already rendered, nothing rendered again"
        elif (redo := redone.get(seg.index)) is not None:
            why = f"rendered again for continuity ({redo.check}): {redo.reason}"
        elif old.attempt != seg.attempt:
            why = f"rendered again as attempt {seg.attempt}" + (f" ({', '.join(fields)} changed)" if fields else "")
        elif fields:
            why = f"storyboard edited: {', '.join(fields)} changed, so its shot key changed"
        else:
            why = "its shot key changed with the model or render settings (the storyboard's spec is the same)"
        if seg.reused_from is not None:
            r = seg.reused_from
            why += f"; that shot was rendered before (job {r.job_id}, segment {r.index}, attempt {r.attempt}): reused"
        changes.append(SegmentChange(change="shot", changed_fields=fields, why=why, **common))
    return before.film.version if before.film else version - 1, changes


@dataclass(frozen=True, slots=True)
class DeliveredAttempt:
    """A segment's delivered attempt (and take) as film QA reads it: which from the film event, the rest from its objects."""

    index: int
    segment_id: str
    attempt: int
    video_key: str
    delivery_key: str
    qa: QaReport
    duration_s: float
    model: dict[str, Any] | None
    take: int = 0
    takes: int = 1


def delivered_attempts(store: ObjectStore, bucket: str, film: FilmEvent, board: Storyboard) -> list[DeliveredAttempt]:
    """Every segment's delivered attempt, in order: the one the job store recorded (``film.attempts``,
    ``chosen_takes``), read back."""
    job_id, delivered = film.job_id, []
    slots = film.delivered_slots(len(board.segments))
    for n, (seg, (attempt, take)) in enumerate(zip(board.segments, slots, strict=True), start=1):
        qa = QaReport.model_validate(store.get_json(bucket, Keys.segment_qa(job_id, n, attempt, take)))
        checked = store.get_json(bucket, Keys.segment_checked(job_id, n, attempt, take))  # segment QA wrote it with its verdict
        delivered.append(
            DeliveredAttempt(
                index=n,
                segment_id=seg.id,
                attempt=attempt,
                take=take,
                takes=int(checked.get("takes", 1)),
                video_key=Keys.segment_video(job_id, n, attempt, take),
                delivery_key=DeliveryKeys.segment(job_id, n),
                qa=qa,
                duration_s=float(checked["duration_s"]),
                model=checked.get("model"),
            )
        )
    return delivered


def build_job_report(store: ObjectStore, bucket: str, film: FilmEncoded, film_qa: FilmQaReport | None = None) -> JobReport:
    """The job's report from what the services stored: the delivered attempts, QA reports per attempt, timings."""
    job_id = film.job_id
    raw = store.get_json(bucket, Keys.storyboard(job_id))
    board = parse_storyboard(raw)
    delivered = delivered_attempts(store, bucket, film, board)
    segments = []
    for t in delivered:
        n, attempt, take, qa = t.index, t.attempt, t.take, t.qa
        seg = board.segments[n - 1]
        generated = _generation(store, bucket, job_id, n, attempt, take)
        segments.append(
            segment_result(
                n,
                t.segment_id,
                qa,
                attempt=attempt,
                prompt=generated.get("prompt") or render_spec(board, n, attempt, take).prompt,
                prompt_tokens=generated.get("prompt_tokens"),
                prompt_tokens_dropped=generated.get("prompt_tokens_dropped"),
                degraded=generated.get("degraded"),
                shot_key=generated.get("shot_key"),
                reused_from=generated.get("reused_from"),
                start_frame=generated.get("start_frame"),
                cast_sheet=generated.get("cast_sheet") or [],
                seed=generated.get("seed", render_spec(board, n, attempt, take).seed),
                model=generated.get("model"),
                qa_history=segment_history(store, bucket, job_id, n, attempt, take),
                video_key=t.video_key,
                delivery_key=t.delivery_key,
                duration_s=t.duration_s,
                characters=list(seg.characters),
                location=seg.location,
                timings=_timings(store, bucket, job_id, (n, attempt, take), qa, generated),
                take=take,
                takes=take_results(store, bucket, job_id, (n, attempt, take), t.takes, variants=bool(seg.variants)),
            )
        )
    previous, changes = version_changes(store, bucket, job_id, film.version, board, segments, recut=bool(film.cut))
    return JobReport(
        job_id=job_id,
        title=raw.get("title"),
        model=delivered[0].model if delivered else None,
        film=FilmInfo(
            key=film.film_key,
            delivery_key=DeliveryKeys.film(job_id, film.version),
            version=film.version,
            duration_s=film.duration_s,
            frame_count=film.frame_count,
            fps=film.fps,
            width=film.width,
            height=film.height,
        ),
        segments=segments,
        film_qa=film_qa,
        regenerations=_earlier_regenerations(store, bucket, job_id, film.version, film_qa),
        previous_version=previous,
        changes=changes,
        cut=cut_placements(film, board),
    )
