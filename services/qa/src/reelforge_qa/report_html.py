"""report.html: the job report for people. One self-contained file: no scripts, no network.

Failures first, then the gate scores (and each segment's light continuity) plotted across the film
(inline SVG; each failed score is a red dot, each join a vertical line, red when it failed; hovering shows the detail through SVG
titles), then one card per segment with a strip of thumbnails (inline base64 JPEG) and its
gates, failed ones highlighted, then the film-level continuity and join tables.

The input is the job report dict (``segments`` with ``id``, ``qa`` scores, ``qa_failed_gates``,
optionally ``gates`` with thresholds and details, ``duration_s``, ``attempt``) and, under
``film_qa``, a :class:`~reelforge_qa.film_models.FilmQaReport` dump.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from reelforge_qa.frames import sample_indices

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
W, H, PAD = 900, 260, 40
CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{margin:0 0 4px}.ok{color:#1a7f37}.bad{color:#c0392b}.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff}
.badge.ok{background:#1a7f37}.badge.bad{background:#c0392b}.fail{background:#fde2e1}ul.failures li{color:#c0392b}
.card{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:10px 0}.card.bad{border:2px solid #c0392b}
.strip{max-width:100%;display:block;margin:6px 0}table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}th{background:#f4f4f4}.legend span{margin-right:14px}"""


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


def _timeline(report: dict[str, Any]) -> list[tuple[float, float]]:
    """(start, duration) of each segment: from the film report, else from durations, else 1 s each."""
    film = report.get("film_qa") or {}
    known = {s["segment_id"]: (s["start_s"], s["duration_s"]) for s in film.get("segments", [])}
    out, t = [], 0.0
    for seg in report.get("segments", []):
        start, duration = known.get(str(seg.get("id")), (t, float(seg.get("duration_s") or 1.0)))
        out.append((start, duration))
        t = start + duration
    return out


def _with_light(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The segments with each one's light-continuity score added as a series of its own."""
    film = report.get("film_qa") or {}
    light = {p["a"]: p["score"] for check in film.get("light", []) for p in check["pairs"] if p["gated"]}
    threshold = film.get("threshold", 0.0)
    out = []
    for seg in report.get("segments", []):
        score = light.get(str(seg.get("id")))
        if score is None:
            out.append(seg)
            continue
        failed = [*seg.get("qa_failed_gates", []), *(["light"] if score < threshold else [])]
        out.append(seg | {"qa": {**seg.get("qa", {}), "light": score}, "qa_failed_gates": failed})
    return out


def _plot(report: dict[str, Any], timeline: list[tuple[float, float]]) -> str:
    segments = _with_light(report)
    names = list(dict.fromkeys(name for seg in segments for name in seg.get("qa", {})))
    total = max((s + d for s, d in timeline), default=1.0) or 1.0
    x = lambda t: PAD + (W - 2 * PAD) * t / total  # noqa: E731 - tiny coordinate maps, used throughout
    y = lambda v: H - PAD - (H - 2 * PAD) * float(v)  # noqa: E731 - as above
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img">']
    parts.append(f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" fill="#fafafa" stroke="#ccc"/>')
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{PAD - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>')
    for b in (report.get("film_qa") or {}).get("boundaries", []):
        colour = "#c0392b" if not b["passed"] else "#bbb"
        what = "; ".join(f["kind"] + ": " + f["detail"] for f in b["findings"]) or f"{b['requested']} asked, {b['detected']} seen"
        label = f'{b["before"]} → {b["after"]} at {b["time_s"]:.2f} s: {what}'
        parts.append(
            f'<line x1="{x(b["time_s"]):.1f}" x2="{x(b["time_s"]):.1f}" y1="{PAD}" y2="{H - PAD}" stroke="{colour}" '
            f'stroke-dasharray="4 3"><title>{escape(label)}</title></line>'
        )
    for n, name in enumerate(names):
        colour = PALETTE[n % len(PALETTE)]
        points = [
            (x(s + d / 2), y(seg["qa"][name]), seg)
            for (s, d), seg in zip(timeline, segments, strict=True)
            if name in seg.get("qa", {})
        ]
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>')
        for px, py, seg in points:
            failed = name in seg.get("qa_failed_gates", [])
            fill, r = ("#c0392b", 5) if failed else (colour, 3)
            label = f"{seg.get('id')} {name}: {seg['qa'][name]:.3f}" + (" FAILED" if failed else "")
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{r}" fill="{fill}"><title>{escape(label)}</title></circle>')
    parts.append(f'<text x="{W / 2}" y="{H - 8}" font-size="11" text-anchor="middle">film time (s), 0 to {total:.1f}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span style="color:{PALETTE[n % len(PALETTE)]}">● {escape(name)}</span>' for n, name in enumerate(names))
    return "".join(parts) + f'<div class="legend">{legend}<span class="bad">● failed</span> <span>┆ join</span></div>'


def _segment_card(seg: dict[str, Any], span: tuple[float, float], thumbnail: bytes | None) -> str:
    failed = set(seg.get("qa_failed_gates", []))
    gates = seg.get("gates") or {name: {"score": score} for name, score in seg.get("qa", {}).items()}
    rows = "".join(
        f'<tr class="{"fail" if name in failed else ""}"><td>{escape(name)}</td><td>{g["score"]:.3f}</td>'
        f'<td>{g.get("threshold", "")}</td><td>{"FAILED" if name in failed else "ok"}</td>'
        f'<td>{escape(str(g.get("detail", "")))}</td></tr>'
        for name, g in gates.items()
    )
    image = ""
    if thumbnail:
        data = base64.b64encode(thumbnail).decode()
        image = f'<img class="strip" alt="frames of {escape(str(seg.get("id")))}" src="data:image/jpeg;base64,{data}"/>'
    state = "bad" if failed else "ok"
    attempt = f", attempt {seg['attempt']}" if seg.get("attempt") else ""
    history = seg.get("qa_history") or []
    if len(history) > 1:  # regenerated: say what each attempt failed
        attempt += " (" + "; ".join(f"attempt {h['attempt']}: {', '.join(h['failed_gates']) or 'passed'}" for h in history) + ")"
    return (
        f'<div class="card {state}"><b>{escape(str(seg.get("id")))}</b> {span[0]:.2f}–{span[0] + span[1]:.2f} s{attempt} '
        f'<span class="badge {state}">{"failed: " + escape(", ".join(sorted(failed))) if failed else "passed"}</span>{image}'
        f"<table><tr><th>gate</th><th>score</th><th>threshold</th><th></th><th>detail</th></tr>{rows}</table></div>"
    )


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _film_tables(film: dict[str, Any]) -> str:
    if not film:
        return ""
    checks = [*film.get("characters", []), *film.get("locations", []), *film.get("light", [])]
    rows = "".join(
        f'<tr class="{"" if c["passed"] else "fail"}"><td>{c["kind"]}</td><td>{escape(c["name"])}</td>'
        f'<td>{escape(", ".join(c["segments"]))}</td>'
        f'<td>{_score(c["score"])}</td><td>{"ok" if c["passed"] else "FAILED"}</td>'
        f'<td>{escape(c["detail"])}</td></tr>'
        for c in checks
    )
    joins = "".join(
        f'<tr class="{"" if b["passed"] else "fail"}"><td>{escape(b["before"])} → {escape(b["after"])}</td>'
        f'<td>{b["time_s"]:.2f}</td>'
        f'<td>{b["requested"]}</td><td>{b["detected"]}</td><td>{b["kelvin_before"]:.0f} K → {b["kelvin_after"]:.0f} K</td>'
        f'<td>{escape("; ".join(f["kind"] + ": " + f["detail"] for f in b["findings"]) or "ok")}</td></tr>'
        for b in film.get("boundaries", [])
    )
    return (
        f"<h2>Continuity (threshold {film.get('threshold')})</h2><table><tr><th>kind</th><th>name</th><th>segments</th>"
        f"<th>score</th><th></th><th>detail</th></tr>{rows}</table><h2>Joins</h2><table><tr><th>join</th><th>at (s)</th>"
        f"<th>asked</th><th>seen</th><th>light</th><th>findings</th></tr>{joins}</table>"
    )


def render_html(report: dict[str, Any], thumbnails: dict[str, bytes] | None = None) -> str:
    """The whole page; ``thumbnails`` maps segment id to a JPEG strip (:func:`thumbnail_strip`)."""
    thumbnails = thumbnails or {}
    segments = report.get("segments", [])
    film = report.get("film_qa") or {}
    timeline = _timeline(report)
    failures = [f"{seg.get('id')}: {', '.join(seg['qa_failed_gates'])}" for seg in segments if seg.get("qa_failed_gates")]
    failures += film.get("failures", [])
    state = "bad" if failures else "ok"
    length = f", {film['duration_s']} s" if film else ""
    title = escape(str(report.get("title") or report.get("job_id") or "Reelforge QA"))
    failure_list = "".join(f"<li>{escape(line)}</li>" for line in failures) or "<li class='ok'>none</li>"
    counts = report.get("gate_failures") or {}
    count_table = "".join(f"<tr><td>{escape(name)}</td><td>{n}</td></tr>" for name, n in counts.items())
    if count_table:
        failure_list += (
            f"</ul><p>Gate failures over all attempts:</p><table><tr><th>gate</th><th>failed</th></tr>{count_table}</table><ul>"
        )
    cards = "".join(
        _segment_card(seg, span, thumbnails.get(str(seg.get("id")))) for seg, span in zip(segments, timeline, strict=True)
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}: QA report</title><style>{CSS}</style>'
        f'</head><body><h1>{title}</h1><p><span class="badge {state}">{"failed" if failures else "passed"}</span> '
        f"{len(segments)} segments{length}</p><h2>Failures</h2><ul class=\"failures\">{failure_list}</ul>"
        f"<h2>Scores across the film</h2>{_plot(report, timeline)}<h2>Segments</h2>{cards}{_film_tables(film)}</body></html>"
    )
