"""Encoder handlers: frames -> segment MP4 (SegmentEncoded); FilmRequested -> the film and its renditions (FilmEncoded).

Both read the job's storyboard from S3: the segment step takes its colour (normalisation, grade)
and frame rate from it, the film step its transitions, sound and deliverables. Outputs have
deterministic keys and are checked before work, so a redelivered event re-announces what is
stored instead of encoding it again. The film's metadata object is written last: it marks a
finished film, and lists the renditions (``deliverables``: name -> key) beside it.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from reelforge_encoder.audio import mux
from reelforge_encoder.codecs import codec_for_quality
from reelforge_encoder.ffmpeg import Codec, Look, concat_copy, encode_frames, piece_path
from reelforge_encoder.film_assembly import Resolver, make_film, narration_needs_espeak, sound_of_segment, spoken
from reelforge_encoder.film_joins import SegmentCut, board_parts, film_cuts, segment_cut
from reelforge_encoder.handles import Span, mux_late, segment_span, without_head
from reelforge_encoder.look import film_fps, segment_look, segment_rate
from reelforge_encoder.renditions import crop_pieces, crop_size, rendition_name, thumbnail
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import Event, FilmEncoded, FilmRequested, SegmentEncoded, SegmentGenerated
from reelforge_shared.references import check_image
from reelforge_shared.storage import Keys, ObjectStore, fetch_job_reference
from reelforge_shared.storyboard import Storyboard, parse_storyboard

S3_THREADS = 8  # concurrent S3 transfers for the film's pieces and renditions
LOGO_MAX_PIXELS = 4096 * 4096  # a logo is a corner of a frame; anything bigger is a mistake or a decompression bomb


@dataclass(slots=True)
class EncoderDeps:
    store: ObjectStore
    bucket: str
    codec: Codec
    film_fps: float | None = None
    espeak: str | None = None  # espeak-ng binary; None: narration text cannot be spoken here


def with_quality(deps: EncoderDeps, board: Storyboard) -> EncoderDeps:
    """The job's own quality preset (``output.quality``: the video endpoints) instead of the encoder's, when it has one."""
    if board.output.quality is None:
        return deps
    return dataclasses.replace(deps, codec=codec_for_quality(deps.codec, board.output.quality))


def _storyboard(deps: EncoderDeps, job: str) -> Storyboard:
    return parse_storyboard(deps.store.get_json(deps.bucket, Keys.storyboard(job)))


def handle_segment(event: SegmentGenerated, deps: EncoderDeps) -> list[Event]:
    """Encode a segment's frames at the delivery size with the storyboard's look, unless its MP4 is already stored."""
    job, n = event.job_id, event.index
    board = _storyboard(deps, job)
    deps = with_quality(deps, board)
    seg = board.segments[n - 1]
    if seg.id != event.segment_id:
        raise PermanentError(f"segment {n} is {seg.id!r} in the storyboard, the event says {event.segment_id!r}")
    if spoken(board, n - 1, event.audio_key is not None) is not None and deps.espeak is None:
        raise PermanentError(narration_needs_espeak(n - 1))  # refused now rather than after the whole film is rendered
    key = Keys.segment_video(job, n, event.attempt)
    if not deps.store.exists(deps.bucket, key):
        began = time.perf_counter()
        frame_keys = deps.store.list_keys(deps.bucket, event.frames_prefix)
        if len(frame_keys) != event.frame_count:
            raise PermanentError(
                f"segment {n}: {len(frame_keys)} frames stored under {event.frames_prefix}, expected {event.frame_count}"
            )
        with tempfile.TemporaryDirectory(prefix="reelforge-enc-") as tmp:
            frames = Path(tmp, "frames")
            frames.mkdir()
            for i, frame_key in enumerate(frame_keys):
                deps.store.get_file(deps.bucket, frame_key, frames / f"{i:04d}.png")
            span = segment_span(board, seg, event.frame_count, event.fps)
            rate = segment_rate(board, event.frame_count, event.fps)[1]
            clip = deps.store.get_file(deps.bucket, event.audio_key, Path(tmp, "clip.wav")) if event.audio_key else None
            if clip is not None and span.head:  # the model's sound spans the handles too
                clip = without_head(clip, span.head / rate, Path(tmp, "clip-film.wav"), deps.codec.exe)
            sound = sound_of_segment(
                board, n - 1, clip, _resolver(deps, event.job_id, Path(tmp)), deps.espeak, Path(tmp), deps.codec.exe
            )
            look = segment_look(board, seg, frames)
            cut = segment_cut(board, n, deps.film_fps or film_fps(board))
            whole = Path(tmp, "handles.mp4" if span.total != span.used else "segment.mp4")
            if cut is None or rate != (deps.film_fps or film_fps(board)):
                bounds = span.around([0, span.used]) if whole.name == "handles.mp4" else None
                video = encode_frames(frames, event.fps, event.width, event.height, whole, deps.codec, look, bounds)
                if bounds is not None:
                    middle = span.middle([piece_path(whole, j) for j in range(len(bounds) - 1)])
                    video = concat_copy(middle, Path(tmp, "segment.mp4"), deps.codec.exe)
            else:
                video = _encode_for_copy(board, cut, span, frames, event, key, whole, look, deps)
            still = thumbnail(video, seg.duration_s, Path(tmp, "thumbnail.jpg"), deps.codec.exe)
            if whole != video:  # handles: the whole render beside the segment, for an editor's timeline
                late = mux_late(whole, sound, span.head / rate, Path(tmp, "handles-sound.mp4"), deps.codec.exe)
                deps.store.put_file(deps.bucket, Keys.segment_handles(key), late, "video/mp4")
            if sound is not None:  # the segment keeps its sound; the film lays the FLAC under its joined pictures
                deps.store.put_file(deps.bucket, Keys.segment_sound(key), sound, "audio/flac")
                video = mux(video, sound, Path(tmp, "segment-sound.mp4"), deps.codec.exe)
            timings = {"encode_s": round(time.perf_counter() - began, 2)}
            deps.store.put_json(deps.bucket, Keys.segment_timings(job, n, event.attempt), timings)
            deps.store.put_file(deps.bucket, Keys.segment_thumbnail(key), still, "image/jpeg")
            deps.store.put_file(deps.bucket, key, video, "video/mp4")  # last: it marks the segment (and its pieces) done
    frame_count, fps = (
        segment_span(board, seg, event.frame_count, event.fps).used,
        segment_rate(board, event.frame_count, event.fps)[1],
    )
    return [
        SegmentEncoded.follow(
            event,
            video_key=key,
            frame_count=frame_count,
            fps=fps,
            width=event.width,
            height=event.height,
            duration_s=frame_count / fps,
            model=event.model,
            has_audio=deps.store.exists(deps.bucket, Keys.segment_sound(key)),
        )
    ]


def _encode_for_copy(
    board: Storyboard,
    cut: SegmentCut,
    span: Span,
    frames: Path,
    event: SegmentGenerated,
    key: str,
    whole: Path,
    look: Look,
    deps: EncoderDeps,
) -> Path:
    """The segment as pieces the film joins by copy (logo burnt in), and each crop's pieces, all stored beside ``key``;
    returns the segment's video (the middle of ``whole``, the whole render, when it has handles)."""
    tmp = whole.parent
    logo = _resolver(deps, event.job_id, tmp)("deliverables.logo", board.deliverables.logo) if board.deliverables.logo else None
    bounds, keyframes = span.around(cut.bounds), [span.head + k for k in cut.keyframes]
    encode_frames(frames, event.fps, event.width, event.height, whole, deps.codec, look, bounds, keyframes, logo)
    fps = segment_rate(board, event.frame_count, event.fps)[1]
    used = span.middle([piece_path(whole, j) for j in range(len(bounds) - 1)])
    uploads = [(Keys.segment_piece(key, j), path) for j, path in enumerate(used)]
    for ratio in board.deliverables.crops:
        name = rendition_name(ratio)
        window = crop_size(board.output.width, board.output.height, ratio)
        cropped = crop_pieces(whole, window, fps, tmp / f"segment_{name}.mp4", deps.codec, logo, bounds, keyframes)
        uploads += [(Keys.segment_piece(key, j, name), path) for j, path in enumerate(span.middle(cropped))]
    for piece, path in uploads:
        deps.store.put_file(deps.bucket, piece, path, "video/mp4")
    return whole if whole.name == "segment.mp4" else concat_copy(used, tmp / "segment.mp4", deps.codec.exe)


def _film_pieces(
    deps: EncoderDeps, board: Storyboard, keys: list[str], fps: float, work: Path
) -> dict[str, list[list[Path]]] | None:
    """Every segment's pieces for the film and its crops, when all of them were encoded for a join by copy."""
    cuts = film_cuts(board_parts(board), fps)
    if cuts is None:
        return None
    with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:  # S3 waits, not CPU: a hundred small objects at once
        if not all(pool.map(lambda k: deps.store.exists(deps.bucket, Keys.segment_piece(k, 0)), keys)):
            return None
        names = ["master"] + [rendition_name(r) for r in board.deliverables.crops]
        pieces: dict[str, list[list[Path]]] = {name: [] for name in names}
        for n, (key, cut) in enumerate(zip(keys, cuts, strict=True), start=1):
            for name in names:
                rendition = None if name == "master" else name
                local = [work / "pieces" / f"{n:03d}-{name}-{j}.mp4" for j in range(len(cut.bounds) - 1)]
                pieces[name].append(
                    list(
                        pool.map(
                            lambda job: deps.store.get_file(deps.bucket, *job),
                            [(Keys.segment_piece(key, j, rendition), path) for j, path in enumerate(local)],
                        )
                    )
                )
    return pieces


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


def _resolver(deps: EncoderDeps, job: str, tmp: Path) -> Resolver:
    """Storyboard media references: only objects under the job's own folder, never a local file, URL or another job's key."""

    def resolve(field: str, ref: str) -> Path:
        name = f"{re.sub(r'[^A-Za-z0-9]+', '-', field)}{Path(ref).suffix[:8]}"
        path = fetch_job_reference(deps.store, deps.bucket, job, field, ref, tmp / name)
        if field == "deliverables.logo":  # ffmpeg would decode a decompression bomb: PIL checks it first
            check_image(path.read_bytes(), field, LOGO_MAX_PIXELS)
        return path

    return resolve


def handle_film(event: FilmRequested, deps: EncoderDeps) -> list[Event]:
    """Compile the film once from the delivered segments, with the storyboard's transitions, sound and renditions."""
    job = event.job_id
    film_key, meta_key = Keys.film(job, event.version), Keys.film_meta(job, event.version)  # a re-render: a new version
    if not deps.store.exists(deps.bucket, meta_key):
        board = _storyboard(deps, job)
        deps = with_quality(deps, board)
        with tempfile.TemporaryDirectory(prefix="reelforge-film-") as tmp:
            work = Path(tmp)
            fps = deps.film_fps or film_fps(board)
            # the takes the job store recorded as delivered (carried by the event): there is no other record of them
            keys = [Keys.segment_video(job, n, event.delivered_attempt(n)) for n in range(1, len(board.segments) + 1)]
            pieces = _film_pieces(deps, board, keys, fps, work)
            # Joined by copy, the film needs only the pieces; otherwise every segment is decoded again.
            paths = [work / f"{n:03d}.mp4" for n in range(1, len(keys) + 1)]
            if pieces is None:
                paths = [deps.store.get_file(deps.bucket, key, path) for key, path in zip(keys, paths, strict=True)]
            sounds = _film_sounds(deps, job, board, keys, work)
            result = make_film(board, paths, work, deps.codec, fps, _resolver(deps, job, work), deps.espeak, pieces, sounds)
            deliverables = {name: Keys.rendition(job, name, event.version) for name in result.renditions}
            uploads = [
                (deliverables[name], path, "image/jpeg" if path.suffix == ".jpg" else "video/mp4")
                for name, path in result.renditions.items()
            ] + [(film_key, result.film, "video/mp4")]
            with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:
                list(pool.map(lambda up: deps.store.put_file(deps.bucket, *up), uploads))
        deps.store.put_json(deps.bucket, meta_key, result.meta | {"deliverables": deliverables})
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
