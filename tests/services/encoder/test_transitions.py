"""Transitions (cut, dissolve, fade through black): the film lasts the sum of its segments whatever joins them.

Frames are counted with PyAV, one by one, in the film as it is written.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from reelforge_encoder.ffmpeg import Codec, FilmPart, ffmpeg_exe, film_frames
from reelforge_encoder.film_joins import compile_film
from reelforge_shared.media import probe
from support.media import grey_segment

SMALL = (160, 90)  # width, height of the test segments
CODEC = Codec(ffmpeg_exe(), preset="ultrafast")


def _lumas(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.to_ndarray(format="gray").mean()) for f in container.decode(video=0)]


@pytest.mark.parametrize("kind", ["cut", "dissolve", "fade"])
@pytest.mark.parametrize("film_fps", [3, 12])
def test_film_lasts_the_sum_of_its_segments_for_every_transition(tmp_path: Path, kind: str, film_fps: int) -> None:
    specs = [(6, 3, 40), (4, 2, 200), (3, 3, 120), (8, 4, 80)]  # frames, fps, grey: 2 s + 2 s + 1 s + 2 s
    parts = [
        FilmPart(
            grey_segment(tmp_path, f"s{i}", n, fps, grey, *SMALL),
            n,
            fps,
            kind if i else "cut",
            1.0 if kind != "cut" and i else 0.0,
        )
        for i, (n, fps, grey) in enumerate(specs)
    ]
    film = compile_film(parts, film_fps, 160, 90, tmp_path / "film.mp4", CODEC)
    info = probe(film)
    assert len(_lumas(film)) == info.frame_count == sum(film_frames(parts, film_fps)) == 7 * film_fps
    assert info.duration_s == pytest.approx(7.0, abs=0.01)


def test_fade_passes_through_black_and_dissolve_does_not(tmp_path: Path) -> None:
    light, other = (
        grey_segment(tmp_path, "light", 12, 12, 200, *SMALL),
        grey_segment(tmp_path, "other", 12, 12, 180, *SMALL),
    )
    faded = _lumas(
        compile_film([FilmPart(light, 12, 12), FilmPart(other, 12, 12, "fade", 0.5)], 12, 160, 90, tmp_path / "f.mp4", CODEC)
    )
    dissolved = _lumas(
        compile_film([FilmPart(light, 12, 12), FilmPart(other, 12, 12, "dissolve", 0.5)], 12, 160, 90, tmp_path / "d.mp4", CODEC)
    )
    assert len(faded) == len(dissolved) == 24
    assert min(faded) < 30
    assert np.argmin(faded) in range(9, 15)  # black at the join, half a second wide
    assert min(dissolved) > 170  # a dissolve between two light shots stays light
    assert faded[0] == pytest.approx(dissolved[0], abs=2)
    assert faded[-1] == pytest.approx(dissolved[-1], abs=2)


def test_the_same_file_twice_is_joined_like_two_files(tmp_path: Path) -> None:
    shot = grey_segment(tmp_path, "shot", 3, 3, 90, *SMALL)
    film = compile_film(
        [FilmPart(shot, 3, 3), FilmPart(shot, 3, 3, "dissolve", 1.0), FilmPart(shot, 3, 3)], 3, 160, 90, tmp_path / "f.mp4", CODEC
    )
    assert probe(film).frame_count == 9
