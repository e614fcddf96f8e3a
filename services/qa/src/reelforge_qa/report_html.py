"""report.html: the job report for people, rendered from :class:`~reelforge_qa.job_report.JobReport` by a Jinja2 template.

One self-contained file: no scripts, no network. Failures first, then every gate score (and each
segment's character, location and light continuity) plotted across the film with the thresholds (inline SVG; each failed
score is a red dot, each join a vertical line, red when it failed; hovering shows the detail
through SVG titles), then one card per segment: a strip of thumbnails (inline base64 JPEG), the
prompt it was rendered from, its timings (render, encode, QA, peak VRAM), its gates with
thresholds and details (failed ones highlighted; what each gate checks and what its failure leads to come from the
gate registry, :mod:`reelforge_qa.gates`), and for a regenerated segment every attempt's
scores, before and after; a segment with several takes or prompt variants shows them side by side (seed,
prompt, scores, mean, which is in the film and why). Then the continuity-driven regenerations (new seed, reference
frame, scores before and after), the film's continuity checks (each pair and its components) and
its joins. The template is ``templates/report.html.j2``; this module only computes coordinates.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import av
import cv2
import jinja2
import numpy as np

from reelforge_qa.frames import sample_indices
from reelforge_qa.gates import about
from reelforge_qa.job_report import JobReport, SegmentResult

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
W, H, PAD = 900, 260, 40
CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{margin:0 0 4px}.ok{color:#1a7f37}.bad{color:#c0392b}.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff}
.badge.ok{background:#1a7f37}.badge.bad{background:#c0392b}.fail{background:#fde2e1}ul.failures li{color:#c0392b}
.card{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:10px 0}.card.bad{border:2px solid #c0392b}
.strip{max-width:100%;display:block;margin:6px 0}table{border-collapse:collapse;margin:6px 0}.pairs{font-size:12px}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}th{background:#f4f4f4}.legend span{margin-right:14px}
.prompt,.timings{margin:4px 0;font-size:13px}.takes{display:flex;flex-wrap:wrap;gap:8px}
.take{border:1px solid #ccc;border-radius:6px;padding:6px;flex:1 1 200px;font-size:13px}.take.won{border:2px solid #1a7f37}
.badge.rendered{background:#2c5d9e}.badge.reused{background:#6b6b6b}img.sheet{height:128px;display:block;margin:4px 0}"""
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
# Compiled when the service starts (about 0.3 s of CPU on a quiet core, seconds under load), not on the first film's tail.
_REPORT = _ENV.get_template("report.html.j2")


def thumbnail_strip(path: Path, count: int = 6, height: int = 72) -> bytes:
    """``count`` evenly spaced frames side by side, ``height`` pixels high, as JPEG bytes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    picks = [frames[i] for i in sample_indices(len(frames), count)] or [np.zeros((height, height, 3), np.uint8)]
    width = round(picks[0].shape[1] * height / picks[0].shape[0])
    strip = np.hstack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in picks])
    ok, data = cv2.imencode(".jpg", strip, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return data.tobytes() if ok else b""


def _timeline(report: JobReport) -> list[tuple[float, float]]:
    """(start, duration) of each segment: from the film report, else from durations, else 1 s each."""
    known = {s.segment_id: (s.start_s, s.duration_s) for s in report.film_qa.segments} if report.film_qa else {}
    out, t = [], 0.0
    for seg in report.segments:
        start, duration = known.get(seg.id, (t, float(seg.duration_s or 1.0)))
        out.append((start, duration))
        t = start + duration
    return out


def _series(report: JobReport) -> dict[str, list[tuple[int, float, bool]]]:
    """Each gate and each kind of continuity as (segment position, score, failed).

    Character and location continuity: a segment's median judged pair over its checks, so the
    segment that breaks a check stands out (its pairs all fail) and its partners do not (one pair
    each). Light: the segment's score against its location's median.
    """
    series: dict[str, list[tuple[int, float, bool]]] = {}
    for i, seg in enumerate(report.segments):
        for name, gate in seg.gates.items():
            series.setdefault(name, []).append((i, gate.score, not gate.passed))
    if report.film_qa:
        threshold = report.film_qa.threshold
        for kind, checks in (("character", report.film_qa.characters), ("location", report.film_qa.locations)):
            pairs: dict[str, list[float]] = {}
            for check in checks:
                for p in check.pairs:
                    if p.gated:
                        for s in (p.a, p.b):
                            pairs.setdefault(s, []).append(p.score)
            for i, seg in enumerate(report.segments):
                if seg.id in pairs:
                    typical = float(np.median(pairs[seg.id]))
                    series.setdefault(kind, []).append((i, typical, typical < threshold))
        light = {p.a: p.score for check in report.film_qa.light for p in check.pairs if p.gated}
        for i, seg in enumerate(report.segments):
            if seg.id in light:
                series.setdefault("light", []).append((i, light[seg.id], light[seg.id] < threshold))
    return series


def _plot(report: JobReport, timeline: list[tuple[float, float]]) -> dict[str, Any]:
    total = max((s + d for s, d in timeline), default=1.0) or 1.0

    def x(t: float) -> float:
        return PAD + (W - 2 * PAD) * t / total

    def y(v: float) -> float:
        return H - PAD - (H - 2 * PAD) * float(v)

    series = []
    for n, (name, values) in enumerate(_series(report).items()):
        points = [
            {
                "x": x(timeline[i][0] + timeline[i][1] / 2),
                "y": y(score),
                "failed": failed,
                "label": f"{report.segments[i].id} {name}: {score:.3f}" + (" FAILED" if failed else ""),
            }
            for i, score, failed in values
        ]
        series.append({"name": name, "colour": PALETTE[n % len(PALETTE)], "points": points})
    thresholds: dict[float, list[str]] = {}
    for seg in report.segments:
        for name, gate in seg.gates.items():
            if 0.0 < gate.threshold < 1.0:
                thresholds.setdefault(gate.threshold, []).append(name)
    if report.film_qa:
        thresholds.setdefault(report.film_qa.threshold, []).append("continuity")
    colours = {s["name"]: s["colour"] for s in series}
    lines = [
        {"y": y(t), "colour": colours.get(names[0], "#999"), "label": f"threshold {t:g}: {', '.join(sorted(set(names)))}"}
        for t, names in thresholds.items()
    ]
    joins = []
    for b in report.film_qa.boundaries if report.film_qa else []:
        what = "; ".join(f"{f.kind}: {f.detail}" for f in b.findings) or f"{b.requested} asked, {b.detected} seen"
        joins.append({"x": x(b.time_s), "failed": not b.passed, "label": f"{b.before} → {b.after} at {b.time_s:.2f} s: {what}"})
    ticks = [{"y": y(v), "label": f"{v:g}"} for v in (0.0, 0.5, 1.0)]
    return {
        "width": W,
        "height": H,
        "pad": PAD,
        "total": total,
        "series": series,
        "thresholds": lines,
        "joins": joins,
        "ticks": ticks,
    }


def _timing(seg: SegmentResult) -> dict[str, str]:
    t = seg.timings

    def seconds(v: float | None) -> str:
        return "not measured" if v is None else f"{v:.2f} s"

    vram = "not measured" if t.peak_vram_bytes is None else f"{t.peak_vram_bytes / 2**30:.1f} GiB"
    return {"render": seconds(t.render_s), "encode": seconds(t.encode_s), "qa": seconds(t.qa_s), "vram": vram}


def render_html(report: JobReport, thumbnails: dict[str, bytes] | None = None, sheets: dict[str, bytes] | None = None) -> str:
    """The whole page; ``thumbnails`` maps segment id to a JPEG strip (:func:`thumbnail_strip`), ``sheets`` a cast sheet
    image's shot key to its PNG (one that is missing is named without its picture)."""
    thumbnails, sheets = thumbnails or {}, sheets or {}
    cast = [
        {"sheet": sheet, "png": base64.b64encode(sheets[sheet.key]).decode() if sheets.get(sheet.key) else None}
        for sheet in report.cast_sheet
    ]
    timeline = _timeline(report)
    film = report.film_qa
    failures = [f"{seg.id}: {', '.join(seg.qa_failed_gates)}" for seg in report.segments if seg.qa_failed_gates]
    failures += film.failures if film else []
    redone: dict[str, list[Any]] = {}
    for r in report.regenerations:
        redone.setdefault(r.segment_id, []).append(r)
    cards = [
        {
            "seg": seg,
            "start": start,
            "end": start + duration,
            "timing": _timing(seg),
            "redone": redone.get(seg.id, []),
            "strip": base64.b64encode(thumbnails[seg.id]).decode() if thumbnails.get(seg.id) else None,
        }
        for seg, (start, duration) in zip(report.segments, timeline, strict=True)
    ]
    checks = [*film.characters, *film.locations, *film.light] if film else []
    # What each gate checks and what a failure leads to, from the gate registry (the table settings and re-rendering read).
    named = {name for seg in report.segments for name in seg.gates} | set(report.gate_failures)
    gates = {name: dict(zip(("doc", "on_failure"), about(name), strict=True)) for name in named}
    return _REPORT.render(
        report=report,
        title=report.title or report.job_id or "Reelforge QA",
        css=CSS,
        failures=failures,
        film=film,
        plot=_plot(report, timeline),
        cards=cards,
        cast=cast,
        checks=checks,
        gates=gates,
    )
