"""Re-import of an edited timeline, planned without servers: a prompt edit is a re-render, a clip's source range may
not leave its media (handles included), and a trim inside it is not re-imported yet; each refusal names the clip."""

from __future__ import annotations

import opentimelineio as otio
import pytest

from reelforge_gateway.timeline.cut import Cut, Render, Shot
from reelforge_gateway.timeline.export import NAMESPACE, build_timeline
from reelforge_gateway.timeline.reimport import ImportRefused, Plan, Rerender, Swap, plan_import

FPS, FRAMES, HANDLE = 6, 6, 3


def _cut() -> Cut:
    """Two shots with handles; shot 2 was rendered as two takes (take 0 in the film, take 1 beside it)."""
    shots = []
    for n, (kind, overlap) in enumerate([("cut", 0), ("dissolve", 3)], start=1):
        used = Render(attempt=1, media=f"media/{n:03d}-s{n}.mp4", frames=FRAMES + 2 * HANDLE, fps=FPS, head=HANDLE, tail=HANDLE)
        other = Render(
            attempt=1,
            take=1,
            seed=99,
            media=f"media/{n:03d}-s{n}.attempt1.take1.mp4",
            frames=FRAMES + 2 * HANDLE,
            fps=FPS,
            head=HANDLE,
            tail=HANDLE,
        )
        shots.append(
            Shot(
                index=n,
                id=f"s{n}",
                prompt=f"shot {n}",
                seed=n,
                model="tiny",
                shot_key=None,
                transition=kind,
                overlap=overlap,
                start=(n - 1) * FRAMES,
                frames=FRAMES,
                render=used,
                alternates=(other,) if n == 2 else (),
            )
        )
    return Cut(job_id="j-1", title="t", version=1, fps=FPS, width=64, height=36, frame_count=2 * FRAMES, shots=tuple(shots))


def _clips(timeline: otio.schema.Timeline) -> list[otio.schema.Clip]:
    return list(timeline.video_tracks()[0].find_clips())


def _range(start: int, frames: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, FPS), otio.opentime.RationalTime(frames, FPS))


def test_a_prompt_edit_on_a_clip_with_handles_is_a_re_render_of_that_shot() -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    clip = _clips(timeline)[1]
    assert clip.source_range == _range(HANDLE, FRAMES)  # the middle of the whole render, as exported
    meta = dict(clip.metadata[NAMESPACE])
    clip.metadata[NAMESPACE] = meta | {"prompt": "sits under the apple tree"}
    assert plan_import(cut, timeline, {}) == Plan([Rerender(2, "sits under the apple tree", None)], [])


@pytest.mark.parametrize(
    ("start", "frames", "message"),
    [
        (0, FRAMES + 2 * HANDLE, "not re-imported yet"),  # extended into both handles: inside the media
        (HANDLE, FRAMES + HANDLE + 1, r"source range 3\.\.13 at 6 fps is outside its media \(0\.\.12 at 6 fps\)"),
    ],
)
def test_a_trimmed_clip_is_refused_naming_it(start: int, frames: int, message: str) -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    _clips(timeline)[0].source_range = _range(start, frames)
    with pytest.raises(ImportRefused, match=message) as refused:
        plan_import(cut, timeline, {})
    assert refused.value.clip == "001 s1"


def _swapped(timeline: otio.schema.Timeline, index: int) -> None:
    """Shot ``index`` on V1 replaced by the clip at its place on the first (disabled) alternate track, as an editor lifts it."""
    film, alternates = timeline.video_tracks()[0], timeline.video_tracks()[1]
    lifted = next(c for c in alternates.find_clips() if c.metadata[NAMESPACE]["index"] == index).deepcopy()
    at = film.index(_clips(timeline)[index - 1])
    film[at] = lifted


def test_another_take_lifted_onto_the_film_track_is_its_selection() -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    assert [t.enabled for t in timeline.video_tracks()] == [True, False]
    _swapped(timeline, 2)
    assert _clips(timeline)[1].name == "002 s2 attempt 1 take 1"
    assert _clips(timeline)[1].metadata[NAMESPACE]["seed"] == 99  # the take's own seed: no re-render asked
    assert plan_import(cut, timeline, {}) == Plan([], [Swap(2, 1)])


def test_a_swap_with_a_prompt_edit_is_refused() -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    _swapped(timeline, 2)
    clip = _clips(timeline)[0]
    clip.metadata[NAMESPACE] = dict(clip.metadata[NAMESPACE]) | {"prompt": "runs"}
    with pytest.raises(ImportRefused, match="not both"):
        plan_import(cut, timeline, {})
