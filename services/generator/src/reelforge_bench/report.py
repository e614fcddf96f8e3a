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
    "x plain",
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
    """The video models' section (when run), then SD 2.1's (when run)."""
    lines = _video(report["video"], command) if "video" in report else []
    if "rows" in report:
        lines += _per_frame(report, command)
    return "\n".join(lines) + "\n"


def _per_frame(report: dict, command: str) -> list[str]:
    """A header naming device, date, model and command, then one line per side and size."""
    lines = [
        f"Device: {report['device']}, {report['dtype']}; date {report['date']}; model {report['model']}"
        + (" (random weights)" if report["random_weights"] else "")
        + f"; {report['steps']} steps, CFG {report['guidance']}, {report['frames']} frames per segment"
        + f" (the plain pipeline timed on {report['baseline_frames']}).",
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
            _cell(row.get("ratio_to_plain"), "{:g}x"),
            check,
            _cell(row["gpu_temperature_c"], "{:g}"),
            _cell(row.get("first_batch_s")),
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += _profile(report.get("profile")) + _levers(report.get("lever_rows"))
    return lines


MODEL_COLUMNS = (
    "model",
    "clip",
    "s/clip",
    "s per video s",
    "s/step",
    "steps",
    "text s",
    "VAE decode s",
    "MP4 s",
    "outside transformer",
    "peak VRAM GiB (transformer / VAE)",
    "TFLOP/step",
    "TFLOP/s",
    "of floor",
    "floor s/clip (transformer)",
    "GPU °C",
)
VIDEO_LEVER_COLUMNS = ("lever", "s/step", "x plain", "first step s", "decode s", "peak VRAM GiB", "calls skipped", "drift")


def _drift(drift: dict | None) -> str:
    if not drift:
        return ""
    psnr = "identical" if drift["psnr_db"] is None else f"PSNR {drift['psnr_db']} dB"
    return f"mean {drift['mean']}, max {drift['max']}, {psnr}" + ("" if drift["within_bound"] else " (**beyond bound**)")


def _video(video: dict, command: str) -> list[str]:
    lines = [
        f"## Video models at their published architectures (random weights, {video['scale']} size)",
        "",
        f"Device: {video['device']}, {video['dtype']}; command: `{command}`. Seconds per clip = text encoding +"
        " steps x seconds per step (timed over a few steps after a warm-up) + VAE decode + MP4 encode. The text"
        " encoder is the real architecture timed on its own; the transformer reads a stand-in of its output shape.",
        "",
        "| " + " | ".join(MODEL_COLUMNS) + " |",
        "| " + " | ".join("---" for _ in MODEL_COLUMNS) + " |",
    ]
    for row in video["models"]:
        if "skipped" in row:
            lines.append(f"| {row['model']} | {row['skipped']} |" + " |" * (len(MODEL_COLUMNS) - 2))
            continue
        cells = (
            row["model"],
            row["clip"],
            f"{row['s_per_clip']:g}",
            f"{row['s_per_video_second']:g}",
            f"{row['s_per_step']:g}",
            str(row["steps"]),
            f"{row['text_encode_s']:g}",
            f"{row['vae_decode_s']:g}",
            _cell(row["mp4_encode_s"]),
            f"{row['share_outside_transformer']:.0%}",
            f"{_cell(row['transformer_peak_vram_gib'])} / {_cell(row['vae_peak_vram_gib'])}",
            f"{row['tflop_per_step']:g}",
            f"{row['achieved_tflops']:g}",
            _cell(row.get("fraction_of_floor"), "{:.0%}"),
            _cell(row.get("floor_s_per_clip_transformer")),
            _cell(row["temperature_c"]),
        )
        lines.append("| " + " | ".join(cells) + " |")
    if video.get("levers"):
        lines += [
            "",
            f"Each lever on its own, then the best combination (drift against the plain run; bound PSNR ≥"
            f" {video['drift_bound_db']:g} dB; random weights, so this is numerical drift, not visual quality):",
            "",
            "| " + " | ".join(VIDEO_LEVER_COLUMNS) + " |",
            "| " + " | ".join("---" for _ in VIDEO_LEVER_COLUMNS) + " |",
        ]
        for row in video["levers"]:
            if "skipped" in row:
                lines.append(f"| {row['lever']} | {row['skipped']} |" + " |" * (len(VIDEO_LEVER_COLUMNS) - 2))
                continue
            cells = (
                row["lever"],
                f"{row['s_per_step']:g}",
                _cell(row.get("x_plain"), "{:g}x"),
                f"{row['first_step_s']:g}",
                f"{row['decode_s']:g}",
                _cell(row["peak_vram_gib"]),
                f"{row['block_calls_skipped']:.0%}",
                _drift(row.get("drift")),
            )
            lines.append("| " + " | ".join(cells) + " |")
    if "recommended_settings" in video:
        settings = video["recommended_settings"]
        lines += [
            "",
            "Generator settings that won (also in generator.env): "
            + (", ".join(f"`{k}={v}`" for k, v in settings.items()) or "none beat the plain run"),
        ]
    render = video.get("worker_render")
    if render:
        lines += [
            "",
            "The worker's own render (FrameRenderer, Wan strategy, levers as settings): "
            + (
                render["skipped"]
                if "skipped" in render
                else f"{render['clip']}: {render['seconds']:g} s ({render['s_per_step']:g} s/step),"
                f" levers {', '.join(render['levers']) or 'none'}, peak VRAM {_cell(render['peak_vram_gib'])} GiB"
            ),
        ]
    if video.get("goals"):
        lines += ["", "| goal | measured | verdict |", "| --- | --- | --- |"]
        lines += [f"| {g['goal']} | {_cell(g['measured'])} | {g['verdict']} |" for g in video["goals"]]
    return lines + [""]


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
    settings = report.get("video", {}).get("recommended_settings")
    if settings is not None:
        (out / "generator.env").write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    return json_path, md_path
