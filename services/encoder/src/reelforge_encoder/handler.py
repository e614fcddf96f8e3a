"""Encoder handlers: frames -> segment MP4 (SegmentEncoded); FilmRequested -> the film (FilmEncoded); its own FilmEncoded
-> the film's crops stored after it (FilmDeliverablesStored).

Both read the job's storyboard from S3: the segment step takes its colour (normalisation, grade)
and frame rate from it, the film step its transitions, sound and deliverables. Outputs have
deterministic keys and are checked before work, so a redelivered event re-announces what is
stored instead of encoding it again. The film's metadata object is written last: it marks a
finished film, and lists its deliverables (``deliverables``: name -> key) beside it.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog

from reelforge_encoder.audio import mux
from reelforge_encoder.codecs import codec_for_quality
from reelforge_encoder.deliverables import crop_name, crop_pieces, thumbnail
from reelforge_encoder.ffmpeg import Codec, Look, concat_copy, encode_frames, piece_path
from reelforge_encoder.film_assembly import FilmResult, Resolver, make_film, make_sound, sound_of_segment
from reelforge_encoder.film_joins import SegmentCut, board_parts, encode_span, film_cuts
from reelforge_encoder.film_recut import Source, check_cut, cut_board, entry_pieces, entry_sound, retime
from reelforge_encoder.grading import normalisation
from reelforge_encoder.handles import mux_late, without_head
from reelforge_encoder.kept_deliverables import KeptDeliverables
from reelforge_encoder.look import film_fps, sample_frames
from reelforge_encoder.piece_cache import PieceCache
from reelforge_encoder.plan import SegmentPlan, TransitionPlan, plan_segment, transition_plans
from reelforge_shared.colour import grey_world_rgb
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import (
    Event,
    FilmDeliverablesStored,
    FilmEncoded,
    FilmEvent,
    FilmRequested,
    SegmentEncoded,
    SegmentGenerated,
)
from reelforge_shared.references import check_image
from reelforge_shared.storage import Keys, ObjectStore, fetch_job_reference
from reelforge_shared.storyboard import Storyboard, encoded_handles, parse_storyboard

S3_THREADS = 8  # concurrent S3 transfers for the film's pieces and deliverables
log = structlog.get_logger("reelforge.encoder")

LOGO_MAX_PIXELS = 4096 * 4096  # a logo is a corner of a frame; anything bigger is a mistake or a decompression bomb


@dataclass(slots=True)
class EncoderDeps:
    store: ObjectStore
    bucket: str
    codec: Codec
    film_fps: float | None = None
    espeak: str | None = None  # espeak-ng binary; None: narration text cannot be spoken here
    pieces: PieceCache | None = None  # the pieces and spans this encoder stored, for its film step (piece_cache)
    # The film's crops, stored after film.encoded by handle_deliverables (kept_deliverables); None: with the film.
    kept: KeptDeliverables | None = None


def _put_piece(deps: EncoderDeps, key: str, path: Path) -> None:
    """Store a piece or transition span, and keep it on this encoder's disk for the film step."""
    etag = deps.store.put_file(deps.bucket, key, path, "video/mp4")
    if deps.pieces is not None:
        deps.pieces.keep(key, path, etag)


def _get_piece(deps: EncoderDeps, key: str, out: Path) -> Path:
    """A piece or span as a local file: the one this encoder kept when S3 still holds it, else downloaded."""
    if deps.pieces is None:
        return deps.store.get_file(deps.bucket, key, out)
    return deps.pieces.get_file(deps.store, deps.bucket, key, out)


def with_quality(deps: EncoderDeps, board: Storyboard) -> EncoderDeps:
    """The job's own quality preset (``output.quality``: the video endpoints) instead of the encoder's, when it has one."""
    if board.output.quality is None:
        return deps
    return dataclasses.replace(deps, codec=codec_for_quality(deps.codec, board.output.quality))


def _storyboard(deps: EncoderDeps, job: str) -> Storyboard:
    return parse_storyboard(deps.store.get_json(deps.bucket, Keys.storyboard(job)))


def handle_segment(event: SegmentGenerated, deps: EncoderDeps) -> list[Event]:
    """Encode a segment's frames at the delivery size with the storyboard's look, unless its MP4 is already stored."""
    board = _storyboard(deps, event.job_id)
    deps = with_quality(deps, board)
    plan = plan_segment(event, board, deps.codec, deps.film_fps, deps.espeak is not None)
    if not deps.store.exists(deps.bucket, plan.video_key):
        encode_segment(plan, deps)
    return [
        SegmentEncoded.follow(
            event,
            video_key=plan.video_key,
            frame_count=plan.out_frames,
            fps=plan.out_fps,
            width=event.width,
            height=event.height,
            duration_s=plan.out_frames / plan.out_fps,
            model=event.model,
            has_audio=deps.store.exists(deps.bucket, Keys.segment_sound(plan.video_key)),
        )
    ]


def encode_segment(plan: SegmentPlan, deps: EncoderDeps) -> None:
    """Execute the plan: fetch the frames, encode the segment (as pieces for a film joined by copy, with its crops'),
    its still and its sound, store them (the video last: it marks the segment done), then the transitions to neighbours
    already encoded."""
    began = time.perf_counter()
    frame_keys = deps.store.list_keys(deps.bucket, plan.frames_prefix)
    if len(frame_keys) != plan.frame_count:
        raise PermanentError(
            f"segment {plan.index}: {len(frame_keys)} frames stored under {plan.frames_prefix}, expected {plan.frame_count}"
        )
    with tempfile.TemporaryDirectory(prefix="reelforge-enc-") as tmp:
        work, frames = Path(tmp), Path(tmp, "frames")
        frames.mkdir()
        with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:  # S3 waits: the frames side by side
            list(pool.map(lambda k: deps.store.get_file(deps.bucket, k[1], frames / f"{k[0]:04d}.png"), enumerate(frame_keys)))
        resolve, exe, handles = _resolver(deps, plan.job_id, work), deps.codec.exe, plan.handles
        clip = deps.store.get_file(deps.bucket, plan.clip_key, work / "clip.wav") if plan.clip_key else None
        if clip is not None and handles.head:  # the model's sound spans the handles too
            clip = without_head(clip, handles.head / plan.out_fps, work / "clip-film.wav", exe)
        sound = make_sound(plan.sound, clip, resolve, deps.espeak, work, exe)
        look = plan.look
        if plan.colour_temperature_k:  # toward the style's light from the frames' own
            light = grey_world_rgb(sample_frames(frames))
            look = dataclasses.replace(look, normalise=normalisation(light, plan.colour_temperature_k))
        whole = work / ("handles.mp4" if handles.total != handles.used else "segment.mp4")  # the whole render
        pieces: dict[str, Path] = {}
        if plan.cut is not None:
            video, pieces = _encode_pieces(plan, plan.cut, frames, look, resolve, whole, deps)
        elif whole.name == "handles.mp4":
            bounds = handles.around([0, handles.used])
            encode_frames(frames, plan.fps, plan.width, plan.height, whole, deps.codec, look, bounds)
            middle = handles.middle([piece_path(whole, j) for j in range(len(bounds) - 1)])
            video = concat_copy(middle, work / "segment.mp4", exe)
        else:
            video = encode_frames(frames, plan.fps, plan.width, plan.height, whole, deps.codec, look)
        still = thumbnail(video, plan.duration_s, work / "thumbnail.jpg", exe)
        if whole != video:  # handles: the whole render beside the segment, for an editor's timeline
            late = mux_late(whole, sound, handles.head / plan.out_fps, work / "handles-sound.mp4", exe)
            deps.store.put_file(deps.bucket, Keys.segment_handles(plan.video_key), late, "video/mp4")
        if sound is not None:  # the segment keeps its sound; the film lays the FLAC under its joined pictures
            deps.store.put_file(deps.bucket, Keys.segment_sound(plan.video_key), sound, "audio/flac")
            video = mux(video, sound, work / "segment-sound.mp4", deps.codec.exe)
        timings = {"encode_s": round(time.perf_counter() - began, 2)}
        deps.store.put_json(deps.bucket, Keys.segment_timings(plan.job_id, plan.index, plan.attempt, plan.take), timings)
        deps.store.put_file(deps.bucket, Keys.segment_thumbnail(plan.video_key), still, "image/jpeg")
        deps.store.put_file(deps.bucket, plan.video_key, video, "video/mp4")  # last: it marks the segment (and its pieces) done
        for transition in plan.transitions:
            _encode_transition(plan, transition, pieces, work, deps)


def _encode_pieces(
    plan: SegmentPlan, cut: SegmentCut, frames: Path, look: Look, resolve: Resolver, whole: Path, deps: EncoderDeps
) -> tuple[Path, dict[str, Path]]:
    """The segment as pieces the film joins by copy (logo burnt in), and each crop's pieces, all stored beside its video.

    Returns the segment (the middle of ``whole``, the whole render, when it has handles) and every piece's local file by
    its key."""
    logo = resolve("deliverables.logo", plan.logo) if plan.logo else None
    handles = plan.handles
    bounds, keyframes = handles.around(cut.bounds), [handles.head + k for k in cut.keyframes]
    encode_frames(frames, plan.fps, plan.width, plan.height, whole, deps.codec, look, bounds, keyframes, logo)
    used = handles.middle([piece_path(whole, j) for j in range(len(bounds) - 1)])
    uploads = {Keys.segment_piece(plan.video_key, j): path for j, path in enumerate(used)}
    for c in plan.crops:
        out = whole.with_name(f"segment_{c.name}.mp4")
        cropped = crop_pieces(whole, c.size, plan.out_fps, out, deps.codec, logo, bounds, keyframes)
        uploads |= {Keys.segment_piece(plan.video_key, j, c.name): path for j, path in enumerate(handles.middle(cropped))}
    with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:
        list(pool.map(lambda key, path: _put_piece(deps, key, path), uploads, uploads.values()))
    segment = whole if whole.name == "segment.mp4" else concat_copy(used, whole.with_name("segment.mp4"), deps.codec.exe)
    return segment, uploads


def _encode_transition(plan: SegmentPlan, span: TransitionPlan, local: dict[str, Path], work: Path, deps: EncoderDeps) -> None:
    """The transition between this segment and a neighbour, in the film and each crop, when the neighbour is encoded:
    off the film's tail. Its latest attempt is taken (the one the film will most likely join); the film encodes any
    other pair itself."""
    other = span.incoming if span.outgoing == plan.index else span.outgoing
    listing = deps.store.list_keys(deps.bucket, f"{Keys.segment(plan.job_id, other)}/")
    attempts = Keys.segment_video_attempts(plan.job_id, other, listing)
    if not attempts:
        return  # not encoded yet: its own encode makes the span
    neighbour = Keys.segment_video(plan.job_id, other, attempts[-1])
    outgoing, incoming = (plan.video_key, neighbour) if span.outgoing == plan.index else (neighbour, plan.video_key)
    # the neighbour's take 0 (its latest attempt's): a film with another take of it encodes that span itself
    outgoing_slot = (plan.attempt, plan.take) if span.outgoing == plan.index else (attempts[-1], 0)
    for crop in plan.outputs:
        key = span.key(incoming, outgoing_slot, crop, plan.film_fps, deps.codec)
        if deps.store.exists(deps.bucket, key):
            continue
        files = []
        for video, j in ((outgoing, span.tail), (incoming, span.head)):
            piece = Keys.segment_piece(video, j, crop)
            if piece in local:
                files.append(local[piece])
            elif deps.store.exists(deps.bucket, piece):
                files.append(_get_piece(deps, piece, work / f"neighbour-{crop}-{j}.mp4"))
            else:
                return  # the neighbour was not encoded for a join by copy: the film encodes the span
        name = f"span-{span.outgoing:03d}-{crop or 'master'}.mp4"
        made = encode_span(files[0], files[1], span.kind, span.overlap, plan.film_fps, work / name, deps.codec)
        _put_piece(deps, key, made)


@dataclass(frozen=True, slots=True)
class FilmPieces:
    """What the film is joined from by copy, per crop (``master``: the film): each segment's pieces (None where only
    a transition used it and that transition was encoded already) and those transitions by incoming segment (0-based)."""

    pieces: dict[str, list[list[Path | None]]]
    spans: dict[str, dict[int, Path]]


def _film_pieces(
    deps: EncoderDeps, board: Storyboard, keys: list[str], slots: list[tuple[int, int]], fps: float, work: Path
) -> FilmPieces | None:
    """Every segment's pieces for the film and its crops, when all of them were encoded for a join by copy; the transitions
    encoded as the segments were (``_encode_transition``) instead of the pieces they were made of."""
    cuts = film_cuts(board_parts(board), fps)
    if cuts is None:
        return None
    names = ["master"] + [crop_name(r) for r in board.deliverables.crops]
    spans = {s.incoming - 1: s for s in transition_plans(board, fps)}
    with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:  # S3 waits, not CPU: a hundred small objects at once
        if not all(pool.map(lambda k: deps.store.exists(deps.bucket, Keys.segment_piece(k, 0)), keys)):
            return None
        span_keys = {
            (name, i): span.key(keys[i], slots[i - 1], None if name == "master" else name, fps, deps.codec)
            for i, span in spans.items()
            for name in names
        }
        found = list(pool.map(lambda k: deps.store.exists(deps.bucket, k), span_keys.values()))
        made = {slot: key for (slot, key), stored in zip(span_keys.items(), found, strict=True) if stored}
        unused = {(name, i - 1, spans[i].tail) for name, i in made} | {(name, i, spans[i].head) for name, i in made}
        wanted: dict[tuple[str, int, int], str] = {
            (name, n, j): Keys.segment_piece(key, j, None if name == "master" else name)
            for n, (key, cut) in enumerate(zip(keys, cuts, strict=True))
            for name in names
            for j in range(cut.pieces)
            if (name, n, j) not in unused
        }

        def get(slot: tuple, key: str) -> Path:
            return _get_piece(deps, key, work / f"{'-'.join(map(str, slot))}.mp4")

        pieces = dict(zip(wanted, pool.map(get, wanted, wanted.values()), strict=True))
        joins = dict(zip(made, pool.map(get, made, made.values()), strict=True))
    return FilmPieces(
        pieces={name: [[pieces.get((name, n, j)) for j in range(c.pieces)] for n, c in enumerate(cuts)] for name in names},
        spans={name: {i: path for (r, i), path in joins.items() if r == name} for name in names},
    )


def _film_sounds(deps: EncoderDeps, job: str, board: Storyboard, keys: list[str], work: Path) -> list[Path | None]:
    """Each segment's sound as its encode stored it; a segment encoded before sounds were stored gets its narration or
    audio file here (a silent one: None)."""

    def fetch(i: int) -> Path | None:
        sound = Keys.segment_sound(keys[i])
        if deps.store.exists(deps.bucket, sound):
            return deps.store.get_file(deps.bucket, sound, work / f"sound-{i + 1:03d}.flac")
        return sound_of_segment(board, i, None, _resolver(deps, job, work), deps.espeak, work, deps.codec.exe)

    with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:
        return list(pool.map(fetch, range(len(keys))))


def _content_type(path: Path) -> str:
    return "image/jpeg" if path.suffix == ".jpg" else "video/mp4"


def _resolver(deps: EncoderDeps, job: str, tmp: Path) -> Resolver:
    """Storyboard media references: only objects under the job's own folder, never a local file, URL or another job's key."""

    def resolve(field: str, ref: str) -> Path:
        name = f"{re.sub(r'[^A-Za-z0-9]+', '-', field)}{Path(ref).suffix[:8]}"
        path = fetch_job_reference(deps.store, deps.bucket, job, field, ref, tmp / name)
        if field == "deliverables.logo":  # ffmpeg would decode a decompression bomb: PIL checks it first
            check_image(path.read_bytes(), field, LOGO_MAX_PIXELS)
        return path

    return resolve


def _recut_inputs(
    deps: EncoderDeps, event: FilmEvent, board: Storyboard, fps: float, work: Path
) -> tuple[Storyboard, list[Path], list[Path | None], dict[str, list[list[Path | None]]], dict[str, int]]:
    """A re-cut film's storyboard as the cut plays it, its entries' pieces (``film_recut``) and sounds, each entry joined
    and stored for film QA (``Keys.cut_entry``), and how many frames were copied and encoded again."""
    job, cut = event.job_id, list(event.cut)
    cuts = check_cut(board, cut, fps)
    played = cut_board(board, cut, fps)
    pieces: list[list[Path | None]] = []
    sounds: list[Path | None] = []
    counted = {"entries": len(cut), "copied_frames": 0, "encoded_frames": 0}
    for position, (entry, entry_cut) in enumerate(zip(cut, cuts, strict=True), start=1):
        video = Keys.segment_video(job, entry.index, entry.attempt, entry.take)
        if not deps.store.exists(deps.bucket, video):
            raise PermanentError(
                f"cut entry {position}: segment {entry.index} attempt {entry.attempt} take {entry.take} is not stored"
            )
        whole = Keys.segment_handles(video)
        handled = deps.store.exists(deps.bucket, whole)
        media = deps.store.get_file(deps.bucket, whole if handled else video, work / f"source{position:03d}.mp4")
        head = encoded_handles(board, board.segments[entry.index - 1])[0] if handled else 0
        sound_key = Keys.segment_sound(video)
        sound = None
        if deps.store.exists(deps.bucket, sound_key):
            sound = deps.store.get_file(deps.bucket, sound_key, work / f"source{position:03d}.flac")
        else:  # encoded before sounds were stored: its narration or audio file, made here
            sound = sound_of_segment(board, entry.index - 1, None, _resolver(deps, job, work), deps.espeak, work, deps.codec.exe)
        source = Source(media, head, sound)
        made = entry_pieces(source, entry, entry_cut, fps, work, position, deps.codec)
        counted["copied_frames"] += sum(p.copied for p in made)
        counted["encoded_frames"] += sum(p.encoded for p in made)
        pieces.append([p.path for p in made])
        sounds.append(entry_sound(source, entry, fps, work / f"cut-sound{position:03d}.wav", deps.codec.exe))
        joined = concat_copy([p.path for p in made], work / f"cut-entry{position:03d}.mp4", deps.codec.exe)
        joined = retime(joined, fps, work / f"cut-entry{position:03d}-retimed.mp4")
        deps.store.put_file(deps.bucket, Keys.cut_entry(job, event.version, position), joined, "video/mp4")
    paths = [work / f"cut{n:03d}.mp4" for n in range(1, len(cut) + 1)]  # not read: the film is joined from the pieces
    return played, paths, sounds, {"master": pieces}, counted


def _make(
    event: FilmEvent, deps: EncoderDeps, board: Storyboard, work: Path, ready: Callable[[str, Path], object]
) -> tuple[FilmResult, dict[str, int] | None]:
    """The film and its deliverables in ``work`` (``make_film``; ``ready`` is called with each as it is final), from the
    segments the event names, and a re-cut's counts (None: not a re-cut)."""
    job = event.job_id
    fps = deps.film_fps or film_fps(board)
    resolve = _resolver(deps, job, work)
    recut: dict[str, int] | None = None
    joined: dict[str, list[list[Path | None]]] | None
    if event.cut:  # an editor's cut: its entries from the stored renders, nothing rendered
        board, paths, sounds, joined, recut = _recut_inputs(deps, event, board, fps, work)
        spans = None
    else:
        # each segment's attempt and take the job store recorded as delivered (carried by the event)
        slots = event.delivered_slots(len(board.segments))
        keys = [Keys.segment_video(job, n, *slot) for n, slot in enumerate(slots, start=1)]
        pieces = _film_pieces(deps, board, keys, slots, fps, work)
        # Joined by copy, the film needs only the pieces; otherwise every segment is decoded again.
        paths = [work / f"{n:03d}.mp4" for n in range(1, len(keys) + 1)]
        if pieces is None:
            paths = [deps.store.get_file(deps.bucket, key, path) for key, path in zip(keys, paths, strict=True)]
        sounds = _film_sounds(deps, job, board, keys, work)
        joined, spans = (pieces.pieces, pieces.spans) if pieces else (None, None)
    result = make_film(
        board, paths, work, deps.codec, fps, resolve, deps.espeak, joined, sounds, spans, ready, retime=bool(event.cut)
    )
    return result, recut


def _later(name: str, deps: EncoderDeps) -> bool:
    """Whether a deliverable is stored after ``film.encoded`` (by ``handle_deliverables``): a crop, when the encoder
    keeps them (``KeptDeliverables``); the thumbnail (a few kB) is stored with the film."""
    return deps.kept is not None and name not in {"film", "thumbnail"}


def handle_film(event: FilmRequested, deps: EncoderDeps) -> list[Event]:
    """Compile the film once from the delivered segments, with the storyboard's transitions, sound and deliverables.

    ``film.encoded`` is published once the film (and thumbnail) is stored: its crops, kept on this encoder's disk, are
    stored by ``handle_deliverables`` on that very event, while QA checks the film. The metadata object lists them all.
    """
    job = event.job_id
    film_key, meta_key = Keys.film(job, event.version), Keys.film_meta(job, event.version)  # a re-render: a new version
    if not deps.store.exists(deps.bucket, meta_key):
        board = _storyboard(deps, job)
        deps = with_quality(deps, board)
        with tempfile.TemporaryDirectory(prefix="reelforge-film-") as tmp:
            with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:  # each deliverable stored as soon as it is made
                uploads: list[Future[str]] = []

                def store(name: str, path: Path) -> None:
                    key = film_key if name == "film" else Keys.deliverable(job, name, event.version)
                    if _later(name, deps) and deps.kept is not None:
                        deps.kept.keep(key, path)
                    else:
                        uploads.append(pool.submit(deps.store.put_file, deps.bucket, key, path, _content_type(path)))

                result, recut = _make(event, deps, board, Path(tmp), store)
                for upload in uploads:
                    upload.result()
            deliverables = {name: Keys.deliverable(job, name, event.version) for name in result.deliverables}
        cut_meta = {} if recut is None else {"cut": recut}
        deps.store.put_json(deps.bucket, meta_key, result.meta | {"deliverables": deliverables} | cut_meta)
    meta = deps.store.get_json(deps.bucket, meta_key)
    return [
        FilmEncoded.follow(
            event,
            film_key=film_key,
            duration_s=meta["duration_s"],
            frame_count=meta["frame_count"],
            fps=meta["fps"],
            width=meta["width"],
            height=meta["height"],
        )
    ]


def handle_deliverables(event: FilmEncoded, deps: EncoderDeps) -> list[Event]:
    """Store the film's deliverables not stored with it (its crops), from this encoder's disk (``KeptDeliverables``), or
    made again when they are not there (another encoder made the film, or this one restarted); then announce them all.

    Runs on the encoder's own ``film.encoded``, a bus message: an encoder that dies before the crops are stored leaves
    the event to be redelivered, and ``film.checked``'s delivery waits for them (the uploader retries)."""
    job, meta_key = event.job_id, Keys.film_meta(event.job_id, event.version)
    if not deps.store.exists(deps.bucket, meta_key):
        return []  # an encoder before film metadata stored everything with the film
    listed: dict[str, str] = dict(deps.store.get_json(deps.bucket, meta_key).get("deliverables") or {})
    with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:  # S3 waits, side by side
        stored = dict(zip(listed, pool.map(lambda key: deps.store.exists(deps.bucket, key), listed.values()), strict=True))
        missing = {name: key for name, key in listed.items() if not stored[name]}
        kept = {name: path for name, key in missing.items() if deps.kept is not None and (path := deps.kept.get(key))}

        def put(name: str, path: Path) -> None:
            deps.store.put_file(deps.bucket, missing[name], path, _content_type(path))
            if deps.kept is not None:
                deps.kept.drop(missing[name])

        list(pool.map(put, kept, kept.values()))
    if again := {name: key for name, key in missing.items() if name not in kept}:
        log.info("encoder.deliverables_made_again", job_id=job, version=event.version, names=sorted(again))
        board = _storyboard(deps, job)
        deps = with_quality(deps, board)
        with tempfile.TemporaryDirectory(prefix="reelforge-film-") as tmp:
            made: dict[str, Path] = {}
            _make(event, deps, board, Path(tmp), lambda name, path: made.setdefault(name, path) if name in again else None)
            with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:
                list(pool.map(lambda n: deps.store.put_file(deps.bucket, again[n], made[n], _content_type(made[n])), again))
    return [FilmDeliverablesStored.follow(event, film_key=event.film_key, deliverables=listed)]
