"""`reelforge encode speed|audio|frames|loop|trim|subtitles`: the editing utilities on a local video.

The same recipes (``reelforge_encoder.editing``) the API offers as derived renditions of a film version; they sit
under ``reelforge encode`` beside ``reelforge encode film`` (:data:`COMMANDS`, registered by ``reelforge.cli``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from reelforge_encoder.codecs import Codec

T = TypeVar("T")

console = Console(stderr=True)
Video = Annotated[Path, typer.Argument(help="the video (e.g. final.mp4)", exists=True, dir_okay=False)]
Out = Annotated[Path, typer.Option("--out", "-o", help="file (or folder, for frames) to write")]


def _codec() -> Codec:
    from reelforge_encoder.codecs import build_codec
    from reelforge_encoder.ffmpeg import ffmpeg_exe

    return build_codec(ffmpeg_exe(), "h264", "high")


def _done(path: Path) -> None:
    console.print(str(path))


def _guard(action: Callable[[], T]) -> T:
    from reelforge_shared.errors import InvalidInput, PermanentError

    try:
        return action()
    except InvalidInput as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except PermanentError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def speed(video: Video, factor: Annotated[float, typer.Argument(help="0.25 to 4 (2: twice as fast)")], out: Out) -> None:
    """Play faster or slower; the sound keeps its pitch."""
    from reelforge_encoder.editing import change_speed

    _done(_guard(lambda: change_speed(video, factor, out, _codec())))


def audio(video: Video, out: Out, format: Annotated[str, typer.Option(help="mp3, aac or wav")] = "mp3") -> None:
    """The sound as MP3, AAC (.m4a) or WAV."""
    from reelforge_encoder.editing import extract_audio

    _done(_guard(lambda: extract_audio(video, format, out, _codec().exe)))


def frames(
    video: Video,
    out: Out,
    fps: Annotated[float, typer.Option(help="stills per second")] = 1.0,
    format: Annotated[str, typer.Option(help="jpeg or png")] = "jpeg",
) -> None:
    """Stills of the video, NNNN.jpg or NNNN.png in the --out folder."""
    from reelforge_encoder.editing import extract_frames

    written = _guard(lambda: extract_frames(video, fps, format, out, _codec().exe))
    console.print(f"{len(written)} stills in {out}")


def loop_(video: Video, times: Annotated[int, typer.Argument(help="how many times in a row (1 to 100)")], out: Out) -> None:
    """The video played several times in a row (stream copy)."""
    from reelforge_encoder.editing import loop

    _done(_guard(lambda: loop(video, times, out, _codec().exe)))


def trim_(
    video: Video,
    start: Annotated[float, typer.Option(help="seconds")],
    end: Annotated[float, typer.Option(help="seconds")],
    out: Out,
) -> None:
    """The part of the video from --start to --end."""
    from reelforge_encoder.editing import trim

    _done(_guard(lambda: trim(video, start, end, out, _codec())))


def subtitles(
    storyboard: Annotated[Path, typer.Argument(help="the storyboard: narration and <S>...<E> speech become cues")],
    out: Out,
    video: Annotated[Path | None, typer.Option(help="the film: written to --out with the subtitles (soft track)")] = None,
    burn: Annotated[bool, typer.Option(help="burn them into the picture instead of a soft track")] = False,
) -> None:
    """SRT or WebVTT (by --out's suffix) of what is said over each segment; with --video, the film with them."""
    import tempfile

    from reelforge_encoder.editing import cues, srt, subtitle, webvtt
    from reelforge_shared.storyboard import load_storyboard

    found = cues(load_storyboard(storyboard.read_bytes()))
    if video is None:
        out.write_text(webvtt(found) if out.suffix == ".vtt" else srt(found))
        _done(out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "cues.srt"
        text.write_text(srt(found))
        _done(_guard(lambda: subtitle(video, text, out, _codec(), burn=burn)))


COMMANDS = {"speed": speed, "audio": audio, "frames": frames, "loop": loop_, "trim": trim_, "subtitles": subtitles}
