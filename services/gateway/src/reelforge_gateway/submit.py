"""Submission: a validated storyboard becomes a stored manifest and one command event per segment.

The job id is random, or derived from an idempotency key; every publish carries a Nats-Msg-Id made
of the job and the segment, so submitting the same job again publishes nothing new.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import yaml

from reelforge_shared.bus import Bus
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import JobSubmitted, SegmentRequested
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard, StoryboardInvalid, parse_storyboard
from reelforge_shared.webhooks import refuse_private


def new_job_id(idempotency_key: str | None = None) -> str:
    if idempotency_key:
        return "j-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
    return "j-" + uuid.uuid4().hex[:16]


async def submit_job(
    board: Storyboard, *, bus: Bus, store: ObjectStore, bucket: str, job_id: str | None = None, model: str | None = None
) -> JobSubmitted:
    """Store the storyboard, then publish JobSubmitted and one SegmentRequested per segment.

    A segment renders with its own ``model``, else the request's ``model``, else the storyboard's (else the generator's).
    """
    job_id = job_id or new_job_id()
    key = Keys.storyboard(job_id)
    store.put_json(bucket, key, board.model_dump(mode="json"))
    submitted = JobSubmitted(
        job_id=job_id, title=board.title, segment_count=len(board.segments), duration_s=board.duration_s, storyboard_key=key
    )
    await bus.publish(submitted)
    for index, seg in enumerate(board.segments, start=1):
        await bus.publish(
            SegmentRequested(
                job_id=job_id,
                index=index,
                segment_id=seg.id,
                spec=render_spec(board, index),
                model=seg.model or model or board.model,
            )
        )
    return submitted


def parse_submission(body: bytes, allow_private: bool) -> tuple[Storyboard, str | None]:
    """The storyboard of a submission (JSON or YAML) and its optional top-level ``webhook_url``, checked."""
    try:
        data: Any = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise StoryboardInvalid([{"field": "storyboard", "message": f"not valid YAML or JSON: {exc}"}]) from None
    webhook_url = None
    if isinstance(data, dict) and "webhook_url" in data:
        webhook_url = data.pop("webhook_url")
        if not isinstance(webhook_url, str):
            raise StoryboardInvalid([{"field": "webhook_url", "message": f"expected a URL, got {webhook_url!r}"[:300]}])
        try:
            refuse_private(webhook_url, allow_private)
        except InvalidInput as exc:
            raise StoryboardInvalid([{"field": "webhook_url", "message": str(exc)}]) from None
    return parse_storyboard(data), webhook_url
