"""Re-import of an edited timeline, planned without servers: a prompt edit is a re-render, another take a selection, a
trim (inside the media, handles included), reorder, removal or earlier attempt a new cut; what cannot be done (a range
leaving its media, a clip twice, a transition before the first clip) is refused naming the clip."""

from __future__ import annotations

import opentimelineio as otio
import pytest

from reelforge_gateway.timeline.cut import Cut, Render, Shot
from reelforge_gateway.timeline.export import NAMESPACE, build_timeline
from reelforge_gateway.timeline.reimport import ImportRefused, Plan, Rerender, Swap, plan_import
from reelforge_shared.events import CutEntry

FPS, FRAMES, HANDLE = 6, 6, 3


def _cut() -> Cut:
    """Two shots with handles; shot 1 was rendered twice (attempt 2 in the film, attempt 1 beside it), shot 2 as two takes
    (take 0 in the film, take 1 beside it)."""
    shots = []
    for n, (kind, overlap) in enumerate([("cut", 0), ("dissolve", 3)], start=1):
        attempt = 2 if n == 1 else 1
        used = Render(
            attempt=attempt, media=f"media/{n:03d}-s{n}.mp4", frames=FRAMES + 2 * HANDLE, fps=FPS, head=HANDLE, tail=HANDLE
        )
        earlier = Render(
            attempt=1, media=f"media/{n:03d}-s{n}.attempt1.mp4", frames=FRAMES + 2 * HANDLE, fps=FPS, head=HANDLE, tail=HANDLE
        )
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
                alternates=(other,) if n == 2 else (earlier,),
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
        (HANDLE, FRAMES + HANDLE + 1, r"source range 3\.\.13 at 6 fps is outside its media \(0\.\.12 at 6 fps\)"),
    ],
)
def test_a_clip_beyond_its_media_is_refused_naming_it(start: int, frames: int, message: str) -> None:
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


def _entry(index: int, attempt: int, start: int, end: int, transition: str = "cut", frames: int = 0) -> CutEntry:
    return CutEntry(
        index=index, attempt=attempt, source_in=start, source_out=end, transition=transition, transition_frames=frames
    )


def test_a_clip_extended_into_its_handles_and_another_trimmed_is_a_new_cut() -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    _clips(timeline)[0].source_range = _range(0, FRAMES + 2 * HANDLE)  # both handles: the whole media
    _clips(timeline)[1].source_range = _range(HANDLE + 1, FRAMES - 2)
    assert plan_import(cut, timeline, {}) == Plan(
        [], [], (_entry(1, 2, 0, FRAMES + 2 * HANDLE), _entry(2, 1, HANDLE + 1, HANDLE + FRAMES - 1, "dissolve", 3))
    )


def test_reordered_clips_are_a_new_cut_that_keeps_the_transition_where_the_editor_left_it() -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    track = timeline.video_tracks()[0]
    assert [type(item).__name__ for item in track] == ["Clip", "Transition", "Clip"]
    first = track[0]
    track.remove(first)
    track.append(first.deepcopy())  # shot 1 moved to the end: the dissolve into shot 2 now leads the track
    with pytest.raises(ImportRefused, match="transition before the first clip"):
        plan_import(cut, timeline, {})
    track.remove(track[0])  # the dissolve removed: a cut
    assert plan_import(cut, timeline, {}) == Plan(
        [], [], (_entry(2, 1, HANDLE, HANDLE + FRAMES), _entry(1, 2, HANDLE, HANDLE + FRAMES))
    )


def test_a_removed_clip_is_a_new_cut_without_it() -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    track = timeline.video_tracks()[0]
    track.remove(track[0])
    track.remove(track[0])  # the dissolve into shot 2 went with the shot before it
    assert plan_import(cut, timeline, {}) == Plan([], [], (_entry(2, 1, HANDLE, HANDLE + FRAMES),))


def test_an_earlier_attempt_lifted_onto_the_film_track_is_a_new_cut_with_it() -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    _swapped(timeline, 1)
    assert _clips(timeline)[0].name == "001 s1 attempt 1"
    planned = plan_import(cut, timeline, {})
    assert planned == Plan([], [], (_entry(1, 1, HANDLE, HANDLE + FRAMES), _entry(2, 1, HANDLE, HANDLE + FRAMES, "dissolve", 3)))


def test_a_clip_twice_and_an_empty_film_track_are_refused() -> None:
    cut = _cut()
    timeline = build_timeline(cut)
    track = timeline.video_tracks()[0]
    track.append(_clips(timeline)[0].deepcopy())
    with pytest.raises(ImportRefused, match="shot 1 is in the cut twice") as refused:
        plan_import(cut, timeline, {})
    assert refused.value.clip == "001 s1"
    timeline = build_timeline(cut)
    for item in list(timeline.video_tracks()[0]):
        timeline.video_tracks()[0].remove(item)
    with pytest.raises(ImportRefused, match="no clip"):
        plan_import(cut, timeline, {})
