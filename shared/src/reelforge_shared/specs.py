"""A storyboard segment resolved into what the generator renders (a RenderSpec).

Used at submission (gateway, CLI) and again by QA when a segment is regenerated, so a retry renders
the same shot with a new seed and nothing else changed.
"""

from __future__ import annotations

from reelforge_shared.events import CastSheet, RenderSpec, SegmentRequested
from reelforge_shared.storyboard import Segment, Storyboard, handle_frames
from reelforge_shared.takes import take_seed

PART_END = ".,;:!? \t\n"  # a part's closing punctuation and spaces, dropped before the parts are joined with ", "
RETRY_SEED_STRIDE = 7919  # a prime far from the +1 per segment of a seed family: retries never reuse a neighbour's seed


def compose_prompt(board: Storyboard, seg: Segment) -> str:
    """Action, cast, place, style, light: most important first, so what a model weighs least is the least needed.

    The whole prompt reaches the model (the generator encodes long prompts in chunks); the order still
    matters to models that weigh early tokens more. The speech and sound tags are not pictured
    (they travel in the spec's ``speech`` and ``audio_caption``).
    """
    parts = [seg.tags.picture]
    parts += [board.characters[name].description for name in seg.characters]
    if seg.location:
        parts.append(f"in {board.locations[seg.location].description}")
    parts += [board.style.prompt_prefix, board.style.lighting]
    # Each part loses its closing punctuation: the joining comma is the only mark between two parts ("arms, young man").
    return ", ".join(clean for p in parts if (clean := p.strip().rstrip(PART_END)))


def sound_prompt(spec: RenderSpec) -> str:
    """What a model that makes sound reads: the picture prompt, then what is said and heard (the tags) in plain words."""
    parts = [spec.prompt.strip()]
    if spec.speech:
        parts.append(f'Someone says: "{spec.speech.strip()}".')
    if spec.audio_caption:
        parts.append(f"Sound: {spec.audio_caption.strip()}.")
    return " ".join(p for p in parts if p)


def segment_seed(board: Storyboard, seg: Segment, index: int, attempt: int = 1) -> int:
    """The GPU brief: a character's segments take seeds from its series (1000, 1001, ...) in film order."""
    if seg.seed is not None:
        base = seg.seed
    elif seg.characters:
        base = board.characters[seg.characters[0]].seed + index
    elif seg.location:
        base = board.locations[seg.location].seed + index
    else:
        base = index
    return (base + (attempt - 1) * RETRY_SEED_STRIDE) % 2**32


def cast_sheet(board: Storyboard, seg: Segment) -> list[CastSheet]:
    """The cast sheet images a segment is conditioned on: its characters without a reference_image, then its location."""
    if not board.style.cast_sheet:
        return []

    def prompt(description: str) -> str:
        parts = (description, board.style.prompt_prefix, board.style.lighting)
        return ", ".join(clean for p in parts if (clean := p.strip().rstrip(PART_END)))

    sheets = [
        CastSheet(kind="character", name=name, prompt=prompt(c.description), seed=c.seed)
        for name in seg.characters
        if (c := board.characters[name]).reference_image is None
    ]
    if seg.location:
        place = board.locations[seg.location]
        sheets.append(CastSheet(kind="location", name=seg.location, prompt=prompt(place.description), seed=place.seed))
    return sheets


def render_spec(board: Storyboard, index: int, attempt: int = 1, take: int = 0) -> RenderSpec:
    """The spec of the segment at 1-based ``index`` (of its take ``take``: reelforge_shared.takes)."""
    seg = board.segments[index - 1]
    seed = segment_seed(board, seg, index, attempt)
    if seg.variants and take:
        seg = seg.model_copy(update={"prompt": seg.variants[take - 1]})  # the variant's prompt, the segment's seed
    elif take:
        seed = take_seed(seed, take)
    return RenderSpec(
        prompt=compose_prompt(board, seg),
        negative_prompt=board.style.negative_prompt,
        seed=seed,
        character_seeds=[board.characters[name].seed for name in seg.characters],
        location_seed=board.locations[seg.location].seed if seg.location else None,
        reference_images=[r for name in seg.characters if (r := board.characters[name].reference_image)],
        cast_sheet=cast_sheet(board, seg),
        frames=seg.frames + 2 * handle_frames(board, seg),  # handles: the encoder keeps the middle for the film
        handles=handle_frames(board, seg),
        fps=seg.fps,
        width=board.output.width,
        height=board.output.height,
        steps=seg.steps,
        guidance=seg.guidance,
        speech=seg.tags.speech,
        audio_caption=seg.tags.audio_caption,
    )


def segment_requests(
    board: Storyboard, job_id: str, index: int, *, attempt: int = 1, model: str | None = None, resume: int = 0
) -> list[SegmentRequested]:
    """The ``segment.requested`` of every take of the segment at ``index`` (one without takes; reelforge_shared.takes)."""
    seg = board.segments[index - 1]
    takes = board.takes_of(seg)
    return [
        SegmentRequested(
            job_id=job_id,
            index=index,
            segment_id=seg.id,
            attempt=attempt,
            take=take,
            takes=takes,
            spec=render_spec(board, index, take=take),
            model=model,
            resume=resume,
        )
        for take in range(takes)
    ]
