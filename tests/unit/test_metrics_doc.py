"""docs/metrics.md lists every metric the services register, generated from the code."""

from reelforge_shared.metrics import catalogue, metrics_markdown
from support.paths import ROOT

DOC = ROOT / "docs" / "metrics.md"


def test_metrics_doc_is_generated_from_the_code() -> None:
    assert DOC.read_text() == metrics_markdown(), "run `reelforge metrics > docs/metrics.md`"


def test_catalogue_has_what_the_dashboard_needs() -> None:
    names = {row["name"] for row in catalogue()}
    for needed in (
        "reelforge_consumer_lag_messages",
        "reelforge_jobs",
        "reelforge_job_duration_seconds",
        "reelforge_stage_latency_seconds",
        "reelforge_job_finish_seconds",
        "reelforge_qa_gate_checks_total",
        "reelforge_dead_letters_total",
        "reelforge_event_handle_seconds",
        "reelforge_generator_vram_used_bytes",
        "reelforge_generator_gpu_temperature_celsius",
    ):
        assert needed in names
