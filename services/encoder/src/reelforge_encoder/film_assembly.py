"""The film from encoded segments: transitions, sound, renditions and the size budget.

One function for the bus handler and for ``reelforge encode``: both hand it local segment files
and a resolver that turns the storyboard's file references (audio, music, logo) into local paths.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelforge_encoder.audio import AUDIO_KBPS, Cue, measure, mix, mux, normalise, speak
from reelforge_encoder.deliver import MB, crop, crop_size, fit, rendition_name, thumbnail
from reelforge_encoder.ffmpeg import Codec, FilmPart, compile_film
from reelforge_encoder.film_joins import film_cuts, join_by_copy
from reelforge_encoder.look import segment_rate
from reelforge_shared.errors import PermanentError
from reelforge_shared.media import probe
from reelforge_shared.storyboard import Storyboard

Resolver = Callable[[str, str], Path]  # (field path, reference as written in the storyboard) -> a local file


def narration_needs_espeak(i: int) -> str:
    return f"segments[{i}].narration needs espeak-ng, which is not installed here; install it or give segments[{i}].audio instead"


@dataclass(frozen=True, slots=True)
class FilmResult:
    film: Path
    renditions: dict[str, Path]  # deliverable name ("9x16", "1x1", "thumbnail") -> file
    meta: dict[str, Any]


def audio_cues(board: Storyboard, resolve: Resolver, espeak: str | None, work: Path) -> list[Cue]:
    """Each segment's audio file or spoken narration, placed at the segment's start in the film."""
    cues, start = [], 0.0
    for i, seg in enumerate(board.segments):
        path = None
        if seg.audio is not None:
            path = resolve(f"segments[{i}].audio", seg.audio)
        elif seg.spoken is not None:  # narration text, or the prompt's <S>...<E> (seed 004)
            if espeak is None:
                raise PermanentError(narration_needs_espeak(i))
            path = speak(seg.spoken, board.audio.voice, work / f"narration-{i + 1:03d}.wav", espeak)
        if path is not None:
            cues.append(Cue(path, start, seg.duration_s))
        start += seg.duration_s
    return cues


def make_film(
    board: Storyboard, segments: list[Path], work: Path, codec: Codec, fps: float, resolve: Resolver, espeak: str | None,
    pieces: dict[str, list[list[Path]]] | None = None,
) -> FilmResult:
    """Film (``work/final.mp4``) and renditions from the encoded segments, in storyboard order.

    With ``pieces`` (rendition name, ``master`` for the film, -> each segment's pieces, encoded by
    ``film_joins``' cut with the logo burnt in) the film and those renditions are joined by stream
    copy and only transitions are encoded; a film over the size budget is encoded again whole.
    """
    if len(segments) != len(board.segments):
        raise PermanentError(f"{len(segments)} segment videos for a storyboard of {len(board.segments)} segments")
    exe, duration, size = codec.exe, board.duration_s, (board.output.width, board.output.height)
    budget = int(board.deliverables.max_film_mb * MB)
    logo = resolve("deliverables.logo", board.deliverables.logo) if board.deliverables.logo else None

    # 1. Sound: nothing asked for, no audio stream at all.
    cues = audio_cues(board, resolve, espeak, work)
    music = resolve("audio.music", board.audio.music) if board.audio.music else None
    sound = None
    if cues or music:
        sound = normalise(mix(cues, music, duration, work / "mix.wav", exe), board.audio.loudness_lufs, work / "sound.m4a", exe)
    audio_kbps = AUDIO_KBPS if sound else 0

    # 2. The master: segments joined with their transitions, logo on top, within the budget.
    parts = [
        FilmPart(path, *segment_rate(board, seg.frames, seg.fps), seg.transition.type, seg.transition.duration)
        for path, seg in zip(segments, board.segments, strict=True)
    ]

    def master(c: Codec) -> Path:
        burnt = bool(pieces)  # segments encoded as pieces carry the logo already
        video = compile_film(parts, fps, *size, work / "master.mp4", c, logo=None if burnt else logo)
        return mux(video, sound, work / "final.mp4", exe) if sound else shutil.copyfile(video, work / "final.mp4")

    def joined(name: str, out: str) -> Path | None:
        """A rendition joined by copy from its pieces; None when there are none or it is over budget."""
        if not pieces or name not in pieces or film_cuts(parts, fps) is None:
            return None
        video = join_by_copy(pieces[name], parts, fps, work / f"joined-{name}.mp4", codec)
        path = mux(video, sound, work / out, exe) if sound else shutil.copyfile(video, work / out)
        return path if path.stat().st_size <= budget else None

    by_copy = joined("master", "final.mp4")
    film, cap = (by_copy, None) if by_copy else fit(master, codec, budget, duration, audio_kbps)
    source = film if by_copy else work / "master.mp4"  # renditions not joined by copy are cut from the master

    # 3. Renditions cut from the master, each within the same budget, and the thumbnail.
    renditions: dict[str, Path] = {}
    for ratio in board.deliverables.crops:
        name, window = rendition_name(ratio), crop_size(*size, ratio)

        def cropped(c: Codec, name: str = name, window: tuple[int, int] = window) -> Path:
            video = crop(source, window, fps, work / f"crop-{name}.mp4", c, logo)
            return (
                mux(video, sound, work / f"final_{name}.mp4", exe)
                if sound
                else shutil.copyfile(video, work / f"final_{name}.mp4")
            )

        copied = joined(name, f"final_{name}.mp4") if by_copy else None
        renditions[name] = copied or fit(cropped, codec, budget, duration, audio_kbps)[0]
    if board.deliverables.thumbnail:
        renditions["thumbnail"] = thumbnail(film, duration, work / "final_thumbnail.jpg", exe)
    return FilmResult(film, renditions, _meta(film, renditions, cap, sound, cues, exe))


def _meta(
    film: Path, renditions: dict[str, Path], cap: int | None, sound: Path | None, cues: list[Cue], exe: str
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
        "audio_cues": len(cues),
        "renditions": {},
    }
    for name, path in renditions.items():
        entry: dict[str, Any] = {"size_bytes": path.stat().st_size}
        if path.suffix == ".mp4":
            r = probe(path, count_frames=False)
            entry |= {"width": r.width, "height": r.height, "has_audio": r.has_audio}
        meta["renditions"][name] = entry
    return meta
