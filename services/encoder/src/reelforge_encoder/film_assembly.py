"""The film from encoded segments: transitions, sound, deliverables and the size budget.

One function for the bus handler and for ``reelforge encode``: both hand it local segment files
and a resolver that turns the storyboard's file references (audio, music, logo) into local paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelforge_encoder import film_recut
from reelforge_encoder.audio import AUDIO_KBPS, lay_end_to_end, measure, mix, mux, normalise, segment_sound, speak
from reelforge_encoder.deliverables import MB, crop, crop_name, crop_size, fit, thumbnail
from reelforge_encoder.ffmpeg import Codec, FilmPart, film_frames
from reelforge_encoder.film_joins import board_parts, compile_film, film_cuts, join_by_copy, overlaps
from reelforge_encoder.plan import SoundPlan, narration_needs_espeak, sound_plan
from reelforge_shared.errors import PermanentError
from reelforge_shared.media import probe
from reelforge_shared.storyboard import Storyboard

Resolver = Callable[[str, str], Path]  # (field path, reference as written in the storyboard) -> a local file


@dataclass(frozen=True, slots=True)
class FilmResult:
    film: Path
    deliverables: dict[str, Path]  # deliverable name ("9x16", "1x1", "thumbnail") -> file
    meta: dict[str, Any]


def make_sound(plan: SoundPlan, clip: Path | None, resolve: Resolver, espeak: str | None, work: Path, exe: str) -> Path | None:
    """A segment's sound (``audio.segment_sound``): ``clip``'s own audio (None: it brought none), with its audio file or
    its words spoken by espeak-ng; None for a silent segment."""
    sources = [clip] if clip is not None else []
    if plan.audio is not None:
        sources.append(resolve(plan.field, plan.audio))
    elif plan.speech is not None:
        if espeak is None:
            raise PermanentError(narration_needs_espeak(plan.index - 1))
        sources.append(speak(plan.speech, plan.voice, work / f"narration-{plan.index:03d}.wav", espeak))
    return segment_sound(sources, plan.duration_s, work / f"sound-{plan.index:03d}.flac", exe)


def sound_of_segment(
    board: Storyboard, i: int, clip: Path | None, resolve: Resolver, espeak: str | None, work: Path, exe: str
) -> Path | None:
    """Segment ``i``'s sound (``make_sound``) planned from the storyboard."""
    return make_sound(sound_plan(board, i, clip is not None), clip, resolve, espeak, work, exe)


def make_film(
    board: Storyboard,
    segments: list[Path],
    work: Path,
    codec: Codec,
    fps: float,
    resolve: Resolver,
    espeak: str | None,
    pieces: dict[str, list[list[Path | None]]] | None = None,
    sounds: list[Path | None] | None = None,
    spans: dict[str, dict[int, Path]] | None = None,
    ready: Callable[[str, Path], object] | None = None,
    *,
    retime: bool = False,
) -> FilmResult:
    """Film (``work/final.mp4``) and deliverables from the encoded segments, in storyboard order.

    With ``pieces`` (crop name, ``master`` for the film, -> each segment's pieces, encoded by
    ``film_joins``' cut with the logo burnt in) the film and those crops are joined by stream
    copy and only transitions are encoded (those in ``spans``, crop name -> incoming segment -> file, were encoded
    already, as the segments were); otherwise the segment files are encoded again as pieces
    (``compile_film``). ``sounds`` are the segments' sounds (``sound_of_segment``, made as they were
    encoded); without them each is made here from the segment file's own audio and the storyboard.
    A crop over the size budget is encoded again with the rate capped. ``ready`` is called with each deliverable
    (``film``, a crop's name, ``thumbnail``) as soon as it is final, so the caller can store it while the rest is made.
    ``retime``: the joins' timestamps are written anew (``film_recut.retime``: pieces of a re-cut copied from renders
    beside pieces encoded again).
    """
    done = ready or (lambda name, path: None)
    if len(segments) != len(board.segments):
        raise PermanentError(f"{len(segments)} segment videos for a storyboard of {len(board.segments)} segments")
    exe, duration, size = codec.exe, board.duration_s, (board.output.width, board.output.height)
    budget = int(board.deliverables.max_film_mb * MB)
    logo = resolve("deliverables.logo", board.deliverables.logo) if board.deliverables.logo else None
    parts = board_parts(board, segments)
    by_copy = bool(pieces) and film_cuts(parts, fps) is not None

    # 1. Sound: each segment's own, end to end, under the music; nothing anywhere: no audio stream at all.
    if sounds is None:
        sounds = [
            sound_of_segment(board, i, path if probe(path, count_frames=False).has_audio else None, resolve, espeak, work, exe)
            for i, path in enumerate(segments)
        ]
    music = resolve("audio.music", board.audio.music) if board.audio.music else None
    sound = None
    if any(sounds) or music:
        voice = _voice(sounds, parts, fps, work / "voice.wav", exe) if any(sounds) else None
        sound = normalise(mix(voice, music, duration, work / "mix.wav", exe), board.audio.loudness_lufs, work / "sound.m4a", exe)
    audio_kbps = AUDIO_KBPS if sound else 0

    def with_sound(video: Path, name: str) -> Path:
        return mux(video, sound, work / name, exe) if sound else _named(video, work / name)

    # 2. The master: joined by copy from the pieces, or from the segment files; capped when over the budget.
    # The film and its crops are joined side by side (each its own ffmpeg: its transition spans, then its concat).
    copies: dict[str, Path] = {}
    if by_copy and pieces:
        with ThreadPoolExecutor(max_workers=len(pieces)) as pool:
            names = list(pieces)
            made = spans or {}
            joins = pool.map(
                lambda name: join_by_copy(pieces[name], parts, fps, work / f"joined-{name}.mp4", codec, made.get(name)), names
            )
            copies = dict(zip(names, joins, strict=True))
        if retime:
            copies = {
                name: film_recut.retime(path, fps, path.with_name(f"{path.stem}-retimed.mp4")) for name, path in copies.items()
            }
    if "master" in copies:
        joined = copies["master"]

        def master(c: Codec) -> Path:
            video = joined if c == codec else crop(joined, size, fps, work / "capped-master.mp4", c, None)
            return with_sound(video, "final.mp4")
    else:

        def master(c: Codec) -> Path:
            return with_sound(compile_film(parts, fps, *size, work / "master.mp4", c, logo), "final.mp4")

    film, cap = fit(master, codec, budget, duration, audio_kbps)
    done("film", film)

    # 3. Deliverables: crops joined by copy from their own pieces, else cut from the master; the thumbnail.
    deliverables: dict[str, Path] = {}
    for ratio in board.deliverables.crops:
        name, window = crop_name(ratio), crop_size(*size, ratio)
        joined_crop = copies.get(name)

        def cropped(c: Codec, name: str = name, window: tuple[int, int] = window, joined_crop: Path | None = joined_crop) -> Path:
            if joined_crop is not None and c == codec:
                video = joined_crop
            else:  # the master's logo lies outside every centred crop: each crop gets its own
                video = crop(film, window, fps, work / f"crop-{name}.mp4", c, logo)
            return with_sound(video, f"final_{name}.mp4")

        deliverables[name] = fit(cropped, codec, budget, duration, audio_kbps)[0]
        done(name, deliverables[name])
    if board.deliverables.thumbnail:
        deliverables["thumbnail"] = thumbnail(film, duration, work / "final_thumbnail.jpg", exe)
        done("thumbnail", deliverables["thumbnail"])
    return FilmResult(film, deliverables, _meta(film, deliverables, cap, sound, sum(s is not None for s in sounds), exe))


def _named(video: Path, out: Path) -> Path:
    """``video`` under another name without copying its bytes (a hard link: the work folder is one file system)."""
    out.unlink(missing_ok=True)
    os.link(video, out)
    return out


def _voice(sounds: list[Path | None], parts: list[FilmPart], fps: float, out: Path, exe: str) -> Path:
    """The segments' sounds end to end at their pictures' times, faded across each dissolve and fade."""
    laps = overlaps(parts, fps) + [0]
    counts = film_frames(parts, fps)
    bounds = [sum(counts[:i]) / fps for i in range(len(counts) + 1)]
    # A transition of P frames into segment i: the outgoing picture has P - P // 2 of them, the incoming P // 2.
    fades = [(laps[i] // 2 / fps, (laps[i + 1] - laps[i + 1] // 2) / fps) for i in range(len(parts))]
    return lay_end_to_end(sounds, bounds, fades, out, exe)


def _meta(
    film: Path, deliverables: dict[str, Path], cap: int | None, sound: Path | None, voiced: int, exe: str
) -> dict[str, Any]:
    info = probe(film)
    meta: dict[str, Any] = {
        "frame_count": info.frame_count,
        "fps": info.fps,
        "duration_s": info.duration_s,
        "width": info.width,
        "height": info.height,
        "codec": info.codec,
        "size_bytes": film.stat().st_size,
        "video_kbps_cap": cap,
        "has_audio": info.has_audio,
        "loudness_lufs": measure(sound, exe)["i"] if sound else None,
        "audio_cues": voiced,  # segments with sound of their own
        "deliverable_files": {},  # name -> size, picture and sound (the handler adds "deliverables": name -> key)
    }
    for name, path in deliverables.items():
        entry: dict[str, Any] = {"size_bytes": path.stat().st_size}
        if path.suffix == ".mp4":
            r = probe(path, count_frames=False)
            entry |= {"width": r.width, "height": r.height, "has_audio": r.has_audio}
        meta["deliverable_files"][name] = entry
    return meta
