"""Submission: a validated storyboard becomes a stored manifest and one command event per segment.

The job id is random, or derived from an idempotency key; every publish carries a Nats-Msg-Id made
of the job and the segment, so submitting the same job again publishes nothing new.
"""

from __future__ import annotations

import hashlib
import uuid

from reelforge_shared.bus import Bus
from reelforge_shared.events import JobSubmitted, SegmentRequested
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Storyboard


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
