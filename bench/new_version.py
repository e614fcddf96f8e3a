"""A new film version after a one-shot edit, against rendering the film whole (issue 18, "the film maker's loop").

Runs ``reelforge run`` the way a user does, as a separate process each time, into one ``--out``:

1. the storyboard (default: the Apfelbaum demo, 33 segments of 24 frames at 1080p) rendered whole;
2. the same storyboard with one segment's prompt changed (``--edit N``, default 12): only that shot's
   key changes, so only it is rendered; the other segments are reused from run 1 (reelforge_shared.shots);
3. (``--unchanged``) the edited storyboard once more: nothing to render.

Each run's wall time includes starting the embedded servers and services, as ``reelforge run`` does;
report.json says per segment whether it was rendered or reused. Settings as ``make demo``: x264
``veryfast``, one QA attempt per segment, the configured model (the tiny random-weight one by default),
and the sharpness gate at 0: only shots that passed their gates are kept for reuse, and the tiny
model's upscaled frames fail sharpness by construction (with the gate on, the edit renders everything).

    .venv/bin/python bench/new_version.py [--storyboard examples/apfelbaum/storyboard.yaml] [--edit 12] [--unchanged]
        [--segments N] [--work DIR] [--json figures.json]

``--segments N`` keeps the first N segments (the storyboard's size, cast and settings unchanged): a
shorter film for a busy machine, named as such in the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml


def run(storyboard: Path, out: Path) -> dict[str, Any]:
    """One ``reelforge run``: its wall time and what report.json says was rendered and reused."""
    env = os.environ | {
        "REELFORGE_ENCODER_PRESET": os.environ.get("REELFORGE_ENCODER_PRESET", "veryfast"),
        "REELFORGE_QA_MAX_ATTEMPTS": os.environ.get("REELFORGE_QA_MAX_ATTEMPTS", "1"),
        # Only a shot that passed its gates is kept for reuse; the tiny model's 128-px frames upscaled to 1080p fail
        # the sharpness gate by construction (docs/qa.md), so at the default threshold nothing would be reused.
        "REELFORGE_SHARPNESS_THRESHOLD": os.environ.get("REELFORGE_SHARPNESS_THRESHOLD", "0"),
    }
    command = [sys.executable, "-m", "reelforge.cli", "run", str(storyboard), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603 - our own CLI
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"reelforge run failed ({done.returncode}) on {storyboard}")
    report = json.loads((out / "report.json").read_text())
    segments = report["segments"]
    if report.get("previous_version"):  # the same job's next film version: only what `changes` names was made anew
        changes = report.get("changes") or []
        rendered = [c["index"] for c in changes if c.get("source") == "rendered"]
        reused = [c["index"] for c in changes if c.get("source") == "reused"]
    else:  # a new job: each segment rendered or reused from the shot store
        reused = [s["index"] for s in segments if s.get("reused_from")]
        rendered = [s["index"] for s in segments if not s.get("reused_from")]
    return {
        "wall_s": round(wall, 1),
        "segments": len(segments),
        "rendered": rendered,
        "reused": len(reused),
        "kept": len(segments) - len(rendered) - len(reused),  # a new version's segments left as they were
        "film_version": (report.get("film") or {}).get("version"),
    }


def boards(storyboard: Path, index: int, segments: int | None, folder: Path) -> tuple[Path, Path]:
    """(the film, the film with segment ``index``'s prompt changed): copies of the storyboard's folder (its media
    files stay beside it), cut to the first ``segments`` segments when given."""
    board = yaml.safe_load(storyboard.read_text())
    if segments is not None:
        board["segments"] = board["segments"][:segments]
    paths = []
    for name, edit in (("whole", False), ("edited", True)):
        copy = folder / name
        shutil.copytree(storyboard.parent, copy)
        if edit:
            board["segments"][index - 1]["prompt"] += ", seen in the late afternoon light"
        path = copy / storyboard.name
        path.write_text(yaml.safe_dump(board, sort_keys=False, allow_unicode=True))
        paths.append(path)
    return paths[0], paths[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storyboard", type=Path, default=Path("examples/apfelbaum/storyboard.yaml"))
    parser.add_argument("--edit", type=int, default=12, help="the segment (1-based) whose prompt is changed")
    parser.add_argument("--segments", type=int, help="only the first N segments (a shorter film on a busy machine)")
    parser.add_argument("--unchanged", action="store_true", help="also run the edited storyboard again unchanged")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--work", type=Path, help="folder for the runs (kept; default: a temporary one, removed)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="reelforge-new-version-") as tmp:
        work = args.work or Path(tmp)
        out = work / "out"
        whole_board, changed = boards(args.storyboard, args.edit, args.segments, work)
        figures: dict[str, Any] = {"whole": run(whole_board, out)}
        figures["one_shot_edit"] = run(changed, out)
        if args.unchanged:
            figures["unchanged"] = run(changed, out)
    figures |= {
        "storyboard": str(args.storyboard),
        "edited_segment": args.edit,
        "segments_kept": args.segments,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "model": os.environ.get("REELFORGE_MODEL", "default (settings)"),
    }
    whole, edit = figures["whole"], figures["one_shot_edit"]
    lines = [
        f"storyboard {args.storyboard}: {whole['segments']} segments; segment {args.edit}'s prompt changed",
        "| run | wall | segments rendered | reused | kept from the version before | film version |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, figure in ((k, figures[k]) for k in ("whole", "one_shot_edit", "unchanged") if k in figures):
        rendered = len(figure["rendered"])
        counts = f"{rendered} | {figure['reused']} | {figure['kept']}"
        lines.append(f"| {name} | {figure['wall_s']:.1f} s | {counts} | {figure['film_version']} |")
    ratio = whole["wall_s"] / edit["wall_s"]
    lines.append(f"one-shot edit / whole: {edit['wall_s'] / whole['wall_s']:.2f} ({ratio:.1f}x faster)")
    lines.append(f"load average before {figures['load_average_before']}, after {figures['load_average_after']}")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
