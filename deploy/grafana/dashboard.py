"""Writes the Grafana dashboard: `python deploy/grafana/dashboard.py > deploy/grafana/dashboards/reelforge.json`.

A test keeps the JSON equal to this script's output. Panels: queue lag per stage, throughput, latency
percentiles, VRAM, temperature and utilisation per GPU pod, QA pass rate per gate, failures and dead
letters, jobs in flight. Metric names and labels: docs/metrics.md.
"""

from __future__ import annotations

import json
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SEGMENT_EVENTS = "SegmentRequested|SegmentGenerated|SegmentEncoded|SegmentChecked"
TIMESERIES_OPTIONS = {
    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
    "tooltip": {"mode": "multi", "sort": "none"},
}
STAT_OPTIONS = {
    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    "orientation": "auto",
    "textMode": "auto",
    "colorMode": "value",
    "graphMode": "area",
    "justifyMode": "auto",
}


def panels() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def panel(
        title: str,
        exprs: list[tuple[str, str]],
        unit: str = "short",
        width: int = 12,
        kind: str = "timeseries",
        description: str = "",
    ) -> None:
        number = len(out) + 1
        out.append(
            {
                "id": number,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": width, "x": 0 if width == 24 or number % 2 else 12, "y": (number - 1) // 2 * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": TIMESERIES_OPTIONS if kind == "timeseries" else STAT_OPTIONS,
                "targets": [
                    {"datasource": DATASOURCE, "refId": chr(65 + i), "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(exprs)
                ],
            }
        )

    panel(
        "Queue lag per stage (pending + ack-pending)",
        [("max by (durable) (reelforge_consumer_lag_messages)", "{{durable}}")],
        description="What KEDA scales the workers on",
    )
    panel(
        "Throughput: segments per minute",
        [
            (
                f'sum by (service) (rate(reelforge_events_handled_total{{outcome="ok", event=~"{SEGMENT_EVENTS}"}}[5m])) * 60',
                "{{service}}",
            )
        ],
    )
    panel(
        "Job latency, end to end (p50, p95)",
        [
            ("histogram_quantile(0.5, sum by (le) (rate(reelforge_job_duration_seconds_bucket[1h])))", "p50"),
            ("histogram_quantile(0.95, sum by (le) (rate(reelforge_job_duration_seconds_bucket[1h])))", "p95"),
            (
                "histogram_quantile(0.95, sum by (le) (rate(reelforge_job_finish_seconds_bucket[1h])))",
                "last delivery to completion p95",
            ),
        ],
        unit="s",
    )
    panel(
        "Stage latency p95 (queue wait + handling)",
        [
            (
                "histogram_quantile(0.95, sum by (le, service, event) (rate(reelforge_stage_latency_seconds_bucket[30m])))",
                "{{service}} {{event}}",
            )
        ],
        unit="s",
    )
    panel(
        "Seconds per segment p95 (generator, encoder, QA)",
        [
            ("histogram_quantile(0.95, sum by (le) (rate(reelforge_generator_segment_seconds_bucket[30m])))", "generator"),
            (
                "histogram_quantile(0.95, sum by (le, service) "
                '(rate(reelforge_event_handle_seconds_bucket{event=~"SegmentGenerated|SegmentEncoded"}[30m])))',
                "{{service}}",
            ),
        ],
        unit="s",
    )
    panel(
        "VRAM per GPU pod",
        [
            ("reelforge_generator_vram_used_bytes", "{{instance}} used"),
            ("reelforge_generator_vram_limit_bytes", "{{instance}} limit"),
        ],
        unit="bytes",
        description="NaN on a worker without a GPU",
    )
    panel(
        "GPU temperature per pod",
        [("reelforge_generator_gpu_temperature_celsius", "{{instance}}")],
        unit="celsius",
        description="Alert above 85 °C for 5 minutes",
    )
    panel("GPU utilisation per pod", [("reelforge_generator_gpu_utilisation_ratio", "{{instance}}")], unit="percentunit")
    panel(
        "QA pass rate per gate",
        [
            (
                'sum by (gate) (increase(reelforge_qa_gate_checks_total{result="pass"}[1h])) '
                "/ sum by (gate) (increase(reelforge_qa_gate_checks_total[1h]))",
                "{{gate}}",
            )
        ],
        unit="percentunit",
    )
    panel(
        "Failures and dead letters",
        [
            (
                "sum by (service) (increase(reelforge_events_handled_total"
                '{outcome=~"failed|invalid|retry|abandoned|dead-lettered"}[15m]))',
                "{{service}} failed/retried",
            ),
            ("sum by (service) (increase(reelforge_dead_letters_total[15m]))", "{{service}} dead letters"),
        ],
    )
    # every gateway replica exports the same store's counts: max, not sum, over them
    panel("Jobs in flight", [("sum(max by (state) (reelforge_jobs))", "in flight")], kind="stat")
    panel(
        "Jobs by state",
        [
            ("max by (state) (reelforge_jobs)", "{{state}}"),
            ("sum by (outcome) (increase(reelforge_job_duration_seconds_count[15m]))", "{{outcome}} (15 min)"),
            ("max(reelforge_job_stalled_seconds)", "longest without progress (s)"),
        ],
    )
    panel("Workers up", [('sum by (service) (up{job="reelforge"})', "{{service}}")], width=24)
    return out


def dashboard() -> dict[str, Any]:
    return {
        "uid": "reelforge",
        "title": "Reelforge",
        "description": "Queue lag, throughput, latency, GPUs, QA and failures of the Reelforge services",
        "tags": ["reelforge"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
