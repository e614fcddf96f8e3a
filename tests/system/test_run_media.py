"""A `reelforge run` folder holds the storyboard's local media beside its storyboard.json (from the job's stored inputs,
on a real S3 server), so `reelforge qa OUT` reads a character's reference image without the storyboard's own folder;
a path out of the folder or onto the run's own files is never written."""

from __future__ import annotations

import json
from pathlib import Path

from reelforge.local_run import collect_media, stage_local_media
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from support.media import png_bytes


def _board(**refs: str) -> dict:
    characters = {
        name: {"description": f"{name}, a person", "seed": 7 + i, "reference_image": ref}
        for i, (name, ref) in enumerate(refs.items())
    }
    return {
        "title": "Media",
        "characters": characters,
        "segments": [{"id": "a", "prompt": "x", "frames": 2, "fps": 2, "characters": sorted(refs)}],
    }


def test_the_run_folder_gets_each_reference_image_at_the_path_its_storyboard_names(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    folder, out, job = tmp_path / "board", tmp_path / "out", "j-media"
    (folder / "refs").mkdir(parents=True)
    hero, villain = png_bytes(32, 32, (200, 40, 40)), png_bytes(24, 24, (40, 40, 200))
    (folder / "refs" / "hero.png").write_bytes(hero)
    (folder / "villain.png").write_bytes(villain)
    board = parse_storyboard(_board(hero="refs/hero.png", villain="./refs/../villain.png"))
    staged = stage_local_media(board, folder, store=store, bucket=settings.work_bucket, job_id=job)
    store.put_json(settings.work_bucket, Keys.storyboard(job), staged.model_dump(mode="json"))
    out.mkdir()

    written = collect_media(store, settings.work_bucket, job, board, out)

    assert sorted(written) == sorted([(out / "refs" / "hero.png").resolve(), (out / "villain.png").resolve()])
    assert (out / "refs" / "hero.png").read_bytes() == hero
    assert (out / "villain.png").read_bytes() == villain


def test_a_medium_named_onto_the_runs_own_files_is_not_written(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    folder, out, job = tmp_path / "board", tmp_path / "out", "j-media-own"
    (folder / "segments").mkdir(parents=True)
    (folder / "segments" / "001.mp4").write_bytes(png_bytes(16, 16, (1, 2, 3)))  # a PNG named like the run's segment
    (folder / "report.json").write_bytes(png_bytes(16, 16, (4, 5, 6)))
    board = parse_storyboard(_board(hero="segments/001.mp4", villain="report.json"))
    staged = stage_local_media(board, folder, store=store, bucket=settings.work_bucket, job_id=job)
    store.put_json(settings.work_bucket, Keys.storyboard(job), staged.model_dump(mode="json"))
    (out / "segments").mkdir(parents=True)
    (out / "segments" / "001.mp4").write_bytes(b"the run's segment")
    (out / "report.json").write_text(json.dumps({"segments": []}))

    assert collect_media(store, settings.work_bucket, job, board, out) == []
    assert (out / "segments" / "001.mp4").read_bytes() == b"the run's segment"
    assert json.loads((out / "report.json").read_text()) == {"segments": []}


def test_a_job_with_no_stored_storyboard_or_no_local_media_writes_nothing(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    board = parse_storyboard(_board(hero="https://example.com/hero.png"))
    assert collect_media(store, settings.work_bucket, "j-none", board, tmp_path) == []
    store.put_json(settings.work_bucket, Keys.storyboard("j-url"), board.model_dump(mode="json"))
    assert collect_media(store, settings.work_bucket, "j-url", board, tmp_path) == []
    assert list(tmp_path.iterdir()) == []
