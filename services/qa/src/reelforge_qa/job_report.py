"""The job report: every segment's final delivery, its QA history across attempts, and the film's QA."""

from __future__ import annotations

from collections import Counter
from typing import Any

from reelforge_shared.events import FilmEncoded
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore


def segment_history(store: ObjectStore, bucket: str, job_id: str, index: int, last_attempt: int) -> list[dict[str, Any]]:
    """What QA said at each attempt of a segment (attempts whose report is missing are skipped)."""
    history = []
    for attempt in range(1, last_attempt + 1):
        key = Keys.segment_qa(job_id, index, attempt)
        if store.exists(bucket, key):
            qa = store.get_json(bucket, key)
            failed = [name for name, gate in qa["gates"].items() if not gate["passed"]]
            history.append({"attempt": attempt, "passed": qa["passed"], "failed_gates": failed})
    return history


def build_job_report(store: ObjectStore, bucket: str, film: FilmEncoded, film_qa: dict[str, Any] | None = None) -> dict[str, Any]:
    job_id = film.job_id
    board = store.get_json(bucket, Keys.storyboard(job_id))
    markers = sorted(
        (store.get_json(bucket, k) for k in store.list_keys(bucket, Keys.delivered_markers(job_id))), key=lambda m: m["index"]
    )
    segments, gate_failures = [], Counter()
    for m in markers:
        history = segment_history(store, bucket, job_id, m["index"], m["attempt"])
        for attempt in history:
            gate_failures.update(attempt["failed_gates"])
        segments.append(
            {
                "index": m["index"], "id": m["segment_id"], "status": "delivered", "attempt": m["attempt"],
                "qa_passed": m["qa"]["passed"], "qa": {name: gate["score"] for name, gate in m["qa"]["gates"].items()},
                "qa_failed_gates": [name for name, gate in m["qa"]["gates"].items() if not gate["passed"]],
                "qa_history": history, "video_key": m["video_key"], "delivery_key": m["delivery_key"],
                "duration_s": m["duration_s"],
                "characters": board["segments"][m["index"] - 1].get("characters", []),
                "location": board["segments"][m["index"] - 1].get("location"),
            }
        )
    return {
        "job_id": job_id, "title": board.get("title"), "model": markers[0]["model"] if markers else None,
        "film": {
            "key": film.film_key, "delivery_key": DeliveryKeys.film(job_id, film.version), "version": film.version, "duration_s": film.duration_s,
            "frame_count": film.frame_count, "fps": film.fps, "width": film.width, "height": film.height,
        },
        "segments": segments,
        "gate_failures": dict(gate_failures),
        "film_qa": film_qa,
    }
