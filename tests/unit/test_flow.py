"""The flow table is the one description of the job's path: routes, rights and the README diagram follow from it."""

from __future__ import annotations

from typing import Any

import pytest

from reelforge.stack import SERVICE_MODULES, build_service
from reelforge_shared import flow
from reelforge_shared.events import Event, SegmentChecked, SegmentRequested, WebhookRequested
from reelforge_shared.jobs import OBSERVED_EVENTS
from support.paths import ROOT


def test_the_readme_diagram_is_the_generated_one() -> None:
    assert f"```mermaid\n{flow.mermaid()}```" in (ROOT / "README.md").read_text(), "run `reelforge flow` into README.md"


def test_the_diagram_shows_qa_re_render_loop() -> None:
    diagram = flow.mermaid()
    assert "qa -- segment.requested --> generator" in diagram
    assert "qa -- segment.rerender_requested --> gateway" in diagram


@pytest.mark.parametrize("name", list(SERVICE_MODULES))
def test_each_service_routes_are_its_rows(name: str, overrides: dict[str, Any]) -> None:
    service = build_service(name, overrides | {"webhook_segment_events": True, "api_auth": "off"})
    got = [(r.event, r.observer, r.after_cancel) for r in service.routes]
    want = [(row.event, row.observer, row.after_cancel) for row in flow.FLOW[name].consumes]
    assert got == want


def test_a_handler_missing_from_build_is_named() -> None:
    with pytest.raises(ValueError, match="handle_film"):
        flow.routes("encoder", {"handle_segment": lambda e, d: []})


def test_options_for_an_event_not_consumed_are_refused() -> None:
    handlers = {"handle": lambda e, d: []}
    with pytest.raises(ValueError, match="SegmentChecked"):
        flow.routes("generator", handlers, {SegmentChecked: {"concurrency": 2}})


def test_the_ledger_observes_what_the_gateway_rows_say() -> None:
    observed = [row.event for row in flow.FLOW["gateway"].consumes if row.observer]
    assert observed == list(OBSERVED_EVENTS)


def test_each_row_names_the_failure_its_event_really_raises() -> None:
    samples: dict[type[Event], Event] = {
        SegmentRequested: SegmentRequested.model_construct(job_id="j-1", index=1, segment_id="s1", attempt=1, resume=0),
        WebhookRequested: WebhookRequested(job_id="j-1", webhook_id="w", url="https://x.example", type="job.completed", data={}),
    }
    for name, service_flow in flow.FLOW.items():
        for row in service_flow.consumes:
            if row.observer or row.event not in samples:
                continue
            assert type(samples[row.event].failure(name, "boom")) is row.failure(), (name, row.event.__name__)


def test_the_generator_may_publish_no_job_failure() -> None:
    """Only stages that handle job-level events may fail a job: the generator fails segments alone."""
    assert flow.publish_subjects("generator", "p") == ["p.segment.generated", "p.segment.requested", "p.segment.failed.generator"]


def test_every_kv_bucket_the_job_store_opens_is_in_the_table() -> None:
    """bootstrap makes (and access grants) exactly the buckets of flow.KV_BUCKETS: the job store's must be there."""
    from reelforge_shared import jobs

    assert jobs.BUCKET in flow.KV_BUCKETS
