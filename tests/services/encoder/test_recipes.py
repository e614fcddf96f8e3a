"""Encoder recipes with real ffmpeg, checked with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from reelforge_encoder.ffmpeg import Codec, FilmPart, ffmpeg_exe, film_frames
from reelforge_encoder.film_joins import compile_film
from reelforge_shared.media import probe
from support.media import grey_segment

CODEC = Codec(ffmpeg_exe())


def _mean_luma(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.to_ndarray(format="gray").mean()) for f in container.decode(video=0)]


def test_segment_is_h264_yuv420p_at_the_output_size(tmp_path: Path) -> None:
    info = probe(grey_segment(tmp_path, "a", 7, 3, 100, codec=CODEC))
    assert (info.width, info.height, info.codec, info.pix_fmt) == (320, 180, "h264", "yuv420p")
    assert info.frame_count == 7
    assert info.fps == 3
    assert info.duration_s == pytest.approx(7 / 3, abs=0.01)
    assert not info.has_audio


def test_segment_mp4_is_faststart(tmp_path: Path) -> None:
    data = grey_segment(tmp_path, "a", 3, 3, 100, codec=CODEC).read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


@pytest.mark.parametrize("film_fps", [4, 12])
def test_film_lasts_the_sum_of_its_segments_with_a_dissolve(tmp_path: Path, film_fps: int) -> None:
    parts = [
        FilmPart(grey_segment(tmp_path, "a", 6, 3, 40, codec=CODEC), 6, 3),
        FilmPart(grey_segment(tmp_path, "b", 4, 4, 200, codec=CODEC), 4, 4, "dissolve", 1.0),
        FilmPart(grey_segment(tmp_path, "c", 5, 2, 120, codec=CODEC), 5, 2),
    ]
    info = probe(compile_film(parts, film_fps, 320, 180, tmp_path / "film.mp4", CODEC))
    assert info.duration_s == pytest.approx(6 / 3 + 4 / 4 + 5 / 2, abs=0.01)
    assert info.frame_count == sum(film_frames(parts, film_fps)) == round(5.5 * film_fps)
    assert (info.width, info.height, info.codec) == (320, 180, "h264")


def test_dissolve_after_cuts_keeps_every_frame(tmp_path: Path) -> None:
    parts = [
        FilmPart(grey_segment(tmp_path, n, 3, 3, 30 * i, codec=CODEC), 3, 3, t, 1.0 if t == "dissolve" else 0.0)
        for i, (n, t) in enumerate([("a", "cut"), ("b", "cut"), ("c", "dissolve"), ("d", "cut"), ("e", "dissolve")])
    ]
    info = probe(compile_film(parts, 3, 320, 180, tmp_path / "film.mp4", CODEC))
    assert info.frame_count == 15
    assert info.duration_s == pytest.approx(5.0, abs=0.01)


def test_dissolve_blends_across_the_boundary_and_a_cut_does_not(tmp_path: Path) -> None:
    dark, light = (
        grey_segment(tmp_path, "dark", 12, 12, 20, codec=CODEC),
        grey_segment(tmp_path, "light", 12, 12, 220, codec=CODEC),
    )
    parts = [FilmPart(dark, 12, 12), FilmPart(light, 12, 12, "dissolve", 0.5)]
    dissolved = compile_film(parts, 12, 320, 180, tmp_path / "d.mp4", CODEC)
    cut = compile_film([FilmPart(dark, 12, 12), FilmPart(light, 12, 12)], 12, 320, 180, tmp_path / "c.mp4", CODEC)
    between = [v for v in _mean_luma(dissolved) if 40 < v < 200]
    assert len(between) >= 4  # 6 frames of cross-fade, the ends close to the pure colours
    assert not [v for v in _mean_luma(cut) if 40 < v < 200]
    assert len(_mean_luma(dissolved)) == len(_mean_luma(cut)) == 24
