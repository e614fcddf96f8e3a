"""The benchmark's report: ``bench.json`` as measured, ``bench.md`` as a table for docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = (
    "size",
    "settings",
    "batch",
    "s/frame",
    "s/segment",
    "peak VRAM GiB",
    "UNet TFLOP/frame",
    "TFLOP/s",
    "of floor",
    "x seed 001",
    "image diff mean / p99 / max (tolerance)",
    "GPU °C",
    "first batch s (compile)",
)


def _cell(value: object, fmt: str = "{}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _check(diff: dict | None) -> str:
    if diff is None:
        return ""
    limits = f"≤ {diff['tolerance']['mean']} / {diff['tolerance']['p99']:g}"
    verdict = "pass" if diff["passed"] else "**FAIL**"
    return f"{diff['mean']} / {diff['p99']:g} / {diff['max']} ({limits}) {verdict}"


def markdown(report: dict, command: str) -> str:
    """A header naming device, date, model and command, then one line per side and size."""
    lines = [
        f"Device: {report['device']}, {report['dtype']}; date {report['date']}; model {report['model']}"
        + (" (random weights)" if report["random_weights"] else "")
        + f"; {report['steps']} steps, CFG {report['guidance']}, {report['frames']} frames per segment"
        + f" (seed 001's settings timed on {report['baseline_frames']}).",
        "",
        f"Command: `{command}`",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for row in report["rows"]:
        check = _check(row.get("image_diff"))
        cells = (
            f"{row['width']}x{row['height']}",
            row["settings"],
            str(row["batch"]),
            f"{row['s_per_frame']:.3f}",
            f"{row['s_per_segment']:.1f}",
            _cell(row["peak_vram_gib"]),
            f"{row['unet_tflop_per_frame']:g}",
            f"{row['achieved_tflops']:g}",
            _cell(row["fraction_of_floor"], "{:.0%}"),
            _cell(row.get("ratio_to_seed_001"), "{:g}x"),
            check,
            _cell(row["gpu_temperature_c"], "{:g}"),
            _cell(row.get("first_batch_s")),
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += _profile(report.get("profile")) + _levers(report.get("lever_rows"))
    return "\n".join(lines) + "\n"


def _profile(profile: dict | None) -> list[str]:
    if not profile:
        return []
    lines = [
        "",
        f"Where the time goes at {profile['width']}x{profile['height']}, batch {profile['batch']}, {profile['steps']} steps:"
        f" text encoder {profile['text_encoder_s_per_segment']} s per segment, UNet {profile['unet_s_per_frame']} s/frame,"
        f" VAE decode {profile['vae_decode_s_per_frame']} s/frame. One UNet call ({profile['unet_call_s']} s) by operator kind:",
        "",
        "| kind | s | share |",
        "| --- | --- | --- |",
    ]
    for kind, seconds in profile["unet_call_by_kind_s"].items():
        lines.append(f"| {kind} | {seconds:.4f} | {profile['unet_call_share'][kind]:.0%} |")
    return lines


LEVER_COLUMNS = (
    "size",
    "lever",
    "s/frame",
    "first call s",
    "peak VRAM GiB",
    "TFLOP/s",
    "of floor",
    "x base",
    "image diff vs base mean / p99 / max",
)


def _levers(rows: list[dict] | None) -> list[str]:
    if not rows:
        return []
    lines = ["", "Each lever on its own (one batch of frames, same latents):", "", "| " + " | ".join(LEVER_COLUMNS) + " |"]
    lines.append("| " + " | ".join("---" for _ in LEVER_COLUMNS) + " |")
    for row in rows:
        size = f"{row['width']}x{row['height']}"
        if "s_per_frame" not in row:
            lines.append(
                f"| {size} | {row['lever']} | {row.get('skipped') or row.get('error')} |" + " |" * (len(LEVER_COLUMNS) - 3)
            )
            continue
        diff = row.get("image_diff_vs_base")
        cells = (
            size,
            row["lever"],
            f"{row['s_per_frame']:.3f}",
            f"{row['first_call_s']:g}",
            _cell(row["peak_vram_gib"]),
            f"{row['achieved_tflops']:g}",
            _cell(row["fraction_of_floor"], "{:.0%}"),
            _cell(row.get("x_base"), "{:g}x"),
            "" if diff is None else f"{diff['mean']} / {diff['p99']:g} / {diff['max']}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(report: dict, out: Path, command: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    json_path.write_text(json.dumps(report | {"command": command}, indent=1) + "\n")
    md_path.write_text(markdown(report, command))
    return json_path, md_path
