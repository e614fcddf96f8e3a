"""The hand-off bundle: a zip with the timeline in every format, the media it references (relative paths), the film
and a README saying what is where. An editor unpacks it anywhere and opens a timeline: the media are found beside it."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from reelforge_gateway.timeline.cut import Cut, Render
from reelforge_gateway.timeline.export import FORMATS, Format, write

Fetch = Callable[[str, Path], Path]  # (bundle path, local destination) -> the file there


def timeline_name(fmt: Format) -> str:
    return f"timeline.{FORMATS[fmt][1]}"


def _named(render: Render) -> str:
    return f"attempt {render.attempt}" + (f" take {render.take}" if render.take else "")


def readme(cut: Cut) -> str:
    lines = [
        f"{cut.title}: job {cut.job_id}, film version {cut.version}",
        f"{cut.width}x{cut.height} at {cut.fps:g} fps, {cut.frame_count} frames ({cut.frame_count / cut.fps:.2f} s)",
        "",
        "What is where:",
        f"  {cut.film:<28} the film as delivered",
    ]
    for fmt in get_args(Format):
        lines.append(f"  {timeline_name(fmt):<28} the timeline for {_EDITORS[fmt]}")
    lines += ["", "Media (relative to the timeline files; every clip's metadata 'reelforge' has its prompt, seed, model, QA):"]
    for shot in cut.shots:
        used = shot.render
        handles = f", handles {used.head}+{used.tail} frames" if used.head or used.tail else ""
        lines.append(f"  {used.media:<28} shot {shot.index} '{shot.id}', {_named(used)} (in the film){handles}")
        lines += [f"  {alt.media:<28} shot {shot.index} '{shot.id}', {_named(alt)} (alternate)" for alt in shot.alternates]
    lines += [
        "",
        "Tracks: V1 film (the cut), A1 sound (each shot's sound), V2... alternates (earlier attempts, other takes)",
        "on disabled tracks.",
        "Markers: QA findings (failed gates, continuity below threshold, joins, re-renders) where they show.",
        "Transitions: the film holds the outgoing shot's last frame and the incoming shot's first frame across",
        "a dissolve or fade; without handles an editor does the same (a freeze) where the media end.",
        "",
    ]
    return "\n".join(lines)


_EDITORS = {
    "otio": "OpenTimelineIO (Kdenlive 25.04+, DaVinci Resolve 18.5+, Premiere via plug-ins)",
    "fcpxml": "Final Cut Pro (File > Import > XML)",
    "fcp7xml": "Premiere Pro and DaVinci Resolve (Final Cut Pro 7 XML)",
    "edl": "any editor (CMX 3600: picture and sound, no alternates)",
    "kdenlive": "Kdenlive and MLT's melt",
}


def write_bundle(cut: Cut, fetch: Fetch, out: Path, work: Path) -> Path:
    """The bundle zip at ``out``; ``fetch`` brings each media file (by its bundle path) into ``work``."""
    names = [cut.film, *(t.media for s in cut.shots for t in s.renders)]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as bundle:  # MP4s do not compress
        bundle.writestr("README.txt", readme(cut))
        for fmt in get_args(Format):
            bundle.writestr(timeline_name(fmt), write(cut, fmt))
        for name in names:
            local = fetch(name, work / name.replace("/", "_"))
            bundle.write(local, name)
            local.unlink(missing_ok=True)
    return out
