"""`reelforge encode film`: the encoder on local files, without the bus, for people who only want the encoder.

Inputs are the segments in order, each a folder of PNG frames or a video file. A storyboard (one
input per segment) brings size, frame rate, colour, transitions, sound and deliverables; without
one, the options describe the film. Frames and frame rates always come from the inputs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

console = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def _measure(source: Path, frames_fps: float) -> tuple[int, float]:
    """Frames and rate of an input: a folder's PNG count at ``frames_fps``, or a video's own."""
    from reelforge_shared.media import probe

    if source.is_dir():
        count = len(list(source.glob("*.png")))
        if not count:
            raise _fail(f"{source}: no PNG frames in this folder", 2)
        return count, frames_fps
    if not source.is_file():
        raise _fail(f"{source}: no such folder or file", 2)
    info = probe(source)
    return info.frame_count, info.fps


def _numbered(source: Path, tmp: Path) -> Path:
    """A folder's PNGs in name order as 0000.png, 0001.png, ... (links, no copies), what the frame recipe reads."""
    if not source.is_dir():
        return source
    folder = tmp / f"frames-{len(list(tmp.iterdir()))}"
    folder.mkdir()
    for i, frame in enumerate(sorted(source.glob("*.png"))):
        (folder / f"{i:04d}.png").symlink_to(frame.resolve())
    return folder


def _board_data(
    inputs: list[Path], storyboard: Path | None, overrides: dict[str, Any], measured: list[tuple[int, float]]
) -> dict:
    if storyboard is None:
        data: dict[str, Any] = {
            "segments": [{"id": f"s{n:03d}", "prompt": p.name or "input"} for n, p in enumerate(inputs, start=1)]
        }
    else:
        try:
            data = yaml.safe_load(storyboard.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise _fail(f"cannot read storyboard {storyboard}: {exc}", 2) from None
        data = {"segments": data} if isinstance(data, list) else data
        if not isinstance(data, dict) or len(data.get("segments") or []) != len(inputs):
            raise _fail(f"{storyboard}: give one input per storyboard segment ({len(inputs)} inputs)", 2)
        base = storyboard.parent.resolve()
        for holder, key in [
            (data.get("audio") or {}, "music"),
            (data.get("deliverables") or {}, "logo"),
            *((s, "audio") for s in data["segments"]),
        ]:
            if isinstance(holder, dict) and isinstance(holder.get(key), str):
                holder[key] = str(base / holder[key])  # relative to the storyboard's folder
    for seg, (frames, fps) in zip(data["segments"], measured, strict=True):
        seg.update(frames=frames, fps=fps)
    for section, values in overrides.items():
        data[section] = {**(data.get(section) or {}), **values}
    return data


def encode(
    inputs: Annotated[list[Path], typer.Argument(help="the segments in order: folders of PNG frames or video files")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="output folder: segments/NNN.mp4, final.mp4, final_9x16.mp4, final_1x1.mp4, final_thumbnail.jpg, final.json",
        ),
    ],
    storyboard: Annotated[
        Path | None, typer.Option(help="storyboard YAML/JSON with one segment per input (paths in it are relative to it)")
    ] = None,
    preset: Annotated[str, typer.Option(help="quality preset: low, medium, high")] = "high",
    codec: Annotated[str, typer.Option(help="h264 or hevc (NVENC when the GPU has it), or an ffmpeg encoder name")] = "h264",
    fps: Annotated[float, typer.Option(help="frame rate of frame folders")] = 3.0,
    size: Annotated[str | None, typer.Option(help="output WIDTHxHEIGHT (default 1920x1080)")] = None,
    output_fps: Annotated[
        float | None, typer.Option(help="interpolate every segment up to this frame rate, same duration")
    ] = None,
    transition: Annotated[
        str | None, typer.Option(help="between inputs without a storyboard: cut, dissolve:SECONDS or fade:SECONDS")
    ] = None,
    grade: Annotated[str | None, typer.Option(help="colour grade: action, romantic, horror, documentary")] = None,
    temperature: Annotated[
        int | None, typer.Option(help="normalise every segment's light toward this colour temperature (K)")
    ] = None,
    music: Annotated[Path | None, typer.Option(help="music bed, ducked under narration")] = None,
    logo: Annotated[Path | None, typer.Option(help="logo overlaid top left on the film and its crops")] = None,
    max_mb: Annotated[float | None, typer.Option(help="size budget of each video in MB (default 500)")] = None,
    crops: Annotated[bool | None, typer.Option(help="9:16 and 1:1 crops (default on)")] = None,
) -> None:
    """Encode segments and the film on local files, without the bus (the encoder service's recipes)."""
    from reelforge_shared.errors import PermanentError
    from reelforge_shared.storyboard import StoryboardInvalid, parse_storyboard

    if preset not in ("low", "medium", "high"):
        raise _fail(f"--preset must be low, medium or high, got {preset!r}", 2)
    overrides = _overrides(size, output_fps, grade, temperature, music, logo, max_mb, crops)
    measured = [_measure(p, fps) for p in inputs]
    data = _board_data(inputs, storyboard, overrides, measured)
    if transition:
        if storyboard is not None:
            raise _fail("--transition is for inputs without a storyboard; the storyboard gives each segment's transition", 2)
        for seg in data["segments"][1:]:
            seg["transition"] = _transition(transition)
    try:
        board = parse_storyboard(data)
    except StoryboardInvalid as exc:
        console.print("[red]invalid film description:[/red]")
        for error in exc.errors:
            console.print(f"  [bold]{error['field']}[/bold]: {error['message']}")
        raise typer.Exit(2) from None
    try:
        meta = _render(board, inputs, out, preset, codec)
    except (PermanentError, ValueError) as exc:
        raise _fail(str(exc), 1) from None
    size_mb = meta["size_bytes"] / 1e6
    console.print(f"film {out / 'final.mp4'}: {meta['duration_s']:.2f} s, {meta['width']}x{meta['height']}, {size_mb:.1f} MB")


def _transition(text: str) -> dict[str, Any]:
    """``cut``, ``dissolve:SECONDS`` or ``fade:SECONDS`` (one second when SECONDS is left out)."""
    kind, _, seconds = text.partition(":")
    try:
        duration = float(seconds) if seconds else (0.0 if kind == "cut" else 1.0)
    except ValueError:
        raise _fail(f"--transition wants cut, dissolve:SECONDS or fade:SECONDS, got {text!r}", 2) from None
    return {"type": kind, "duration": duration}


def _overrides(
    size: str | None,
    output_fps: float | None,
    grade: str | None,
    temperature: int | None,
    music: Path | None,
    logo: Path | None,
    max_mb: float | None,
    crops: bool | None,
) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {"output": {}, "style": {}, "audio": {}, "deliverables": {}}
    if size:
        width, _, height = size.lower().partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise _fail(f"--size wants WIDTHxHEIGHT, got {size!r}", 2)
        overrides["output"] |= {"width": int(width), "height": int(height)}
    if output_fps:
        overrides["output"]["fps"] = output_fps
    if grade:
        overrides["style"]["grade"] = grade
    if temperature:
        overrides["style"]["color_temperature_k"] = temperature
    if music:
        overrides["audio"]["music"] = str(music.resolve())
    if logo:
        overrides["deliverables"]["logo"] = str(logo.resolve())
    if max_mb:
        overrides["deliverables"]["max_film_mb"] = max_mb
    if crops is not None:
        overrides["deliverables"]["crops"] = ["9:16", "1:1"] if crops else []
    return {section: values for section, values in overrides.items() if values}


def _render(board: Any, inputs: list[Path], out: Path, preset: str, codec_name: str) -> dict[str, Any]:
    from reelforge_encoder.audio import mux
    from reelforge_encoder.codecs import build_codec
    from reelforge_encoder.ffmpeg import encode_frames, ffmpeg_exe
    from reelforge_encoder.film_assembly import make_film, sound_of_segment
    from reelforge_encoder.look import film_fps, segment_look
    from reelforge_encoder.plan import narration_needs_espeak, sound_plan
    from reelforge_shared.media import probe

    espeak = shutil.which("espeak-ng")
    voiced = [not source.is_dir() and probe(source, count_frames=False).has_audio for source in inputs]
    for i, has_sound in enumerate(voiced):
        if sound_plan(board, i, has_sound).speech is not None and espeak is None:
            raise ValueError(narration_needs_espeak(i))
    codec = build_codec(ffmpeg_exe(), codec_name, preset)
    (out / "segments").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reelforge-encode-") as tmp:
        work = Path(tmp)
        (work / "inputs").mkdir()
        segments, sounds = [], []
        for n, (source, seg) in enumerate(zip(inputs, board.segments, strict=True), start=1):
            frames = _numbered(source, work / "inputs")
            target = out / "segments" / f"{n:03d}.mp4"
            # A clip's own sound (the sound-clips note's speech and effects) stays with it, in the segment and in the film.
            sound = sound_of_segment(board, n - 1, source if voiced[n - 1] else None, _local, espeak, work, codec.exe)
            look = segment_look(board, seg, frames)
            video = encode_frames(frames, seg.fps, board.output.width, board.output.height, work / f"{n:03d}.mp4", codec, look)
            segments.append(mux(video, sound, target, codec.exe) if sound else Path(shutil.move(video, target)))
            sounds.append(sound)
            console.print(f"segment {n}/{len(inputs)} {target}")
        result = make_film(board, segments, work, codec, film_fps(board), _local, espeak, sounds=sounds)
        shutil.move(result.film, out / "final.mp4")
        for path in result.deliverables.values():
            shutil.move(path, out / path.name)
    meta = result.meta | {"deliverables": {name: path.name for name, path in result.deliverables.items()}}
    (out / "final.json").write_text(json.dumps(meta, indent=2))
    return meta


def _local(field: str, ref: str) -> Path:
    path = Path(ref)
    if not path.is_file():
        raise ValueError(f"{field}: no such file {ref!r}")
    return path
