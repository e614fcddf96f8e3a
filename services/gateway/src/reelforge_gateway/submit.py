"""Submission: a validated storyboard becomes a stored manifest and one command event per segment.

The job id is random, or derived from an idempotency key; every publish carries a Nats-Msg-Id made
of the job and the segment, so submitting the same job again publishes nothing new.
"""

from __future__ import annotations

import hashlib
import uuid

from reelforge_shared.bus import Bus
from reelforge_shared.events import JobSubmitted, RenderSpec, SegmentRequested
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import Segment, Storyboard

SEGMENT_SEED_STRIDE = 1  # seed 001: a character's segments take seeds 1000, 1001, ... in film order


def new_job_id(idempotency_key: str | None = None) -> str:
    if idempotency_key:
        return "j-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
    return "j-" + uuid.uuid4().hex[:16]


def compose_prompt(board: Storyboard, seg: Segment) -> str:
    """Style prefix, cast, place, action, light: the order CLIP weighs most to least."""
    parts = [board.style.prompt_prefix]
    parts += [board.characters[name].description for name in seg.characters]
    if seg.location:
        parts.append(f"in {board.locations[seg.location].description}")
    parts += [seg.prompt, board.style.lighting]
    return ", ".join(p.strip().rstrip(",") for p in parts if p and p.strip())


def render_spec(board: Storyboard, seg: Segment, index: int) -> RenderSpec:
    character_seeds = [board.characters[name].seed for name in seg.characters]
    location_seed = board.locations[seg.location].seed if seg.location else None
    family = character_seeds[0] if character_seeds else (location_seed or 0)
    return RenderSpec(
        prompt=compose_prompt(board, seg), negative_prompt=board.style.negative_prompt,
        seed=seg.seed if seg.seed is not None else (family + index * SEGMENT_SEED_STRIDE) % 2**32,
        character_seeds=character_seeds, location_seed=location_seed,
        reference_images=[r for name in seg.characters if (r := board.characters[name].reference_image)],
        frames=seg.frames, fps=seg.fps, width=board.output.width, height=board.output.height,
    )


async def submit_job(
    board: Storyboard, *, bus: Bus, store: ObjectStore, bucket: str, job_id: str | None = None, model: str | None = None
) -> JobSubmitted:
    """Store the storyboard, then publish JobSubmitted and one SegmentRequested per segment."""
    job_id = job_id or new_job_id()
    key = Keys.storyboard(job_id)
    store.put_json(bucket, key, board.model_dump(mode="json"))
    submitted = JobSubmitted(
        job_id=job_id, title=board.title, segment_count=len(board.segments), duration_s=board.duration_s, storyboard_key=key
    )
    await bus.publish(submitted)
    for index, seg in enumerate(board.segments, start=1):
        await bus.publish(
            SegmentRequested(job_id=job_id, index=index, segment_id=seg.id, spec=render_spec(board, seg, index), model=model)
        )
    return submitted
