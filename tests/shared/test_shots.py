"""Shot keys (issue 18 point 1): the same render spec gives the same key, any input changed gives another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelforge_shared.events import CastSheet, RenderSpec, StartFrame
from reelforge_shared.shots import (
    RENDER_CODE_VERSION,
    RenderProfile,
    json_digest,
    model_revision,
    owner_folder,
    reference_hashes,
    sheet_key,
    sheet_spec,
    shot_key,
)
from reelforge_shared.storage import ObjectStore

SPEC = RenderSpec(
    prompt="a man walks into a field, documentary still",
    negative_prompt="blurry",
    seed=1001,
    character_seeds=[1000],
    location_seed=5000,
    frames=6,
    fps=3.0,
    width=320,
    height=180,
)
PROFILE = RenderProfile(
    model="reelforge/tiny-sd",
    revision="sha256:abc",
    pipeline="StableDiffusionPipeline",
    scheduler="PNDMScheduler:0f",
    steps=3,
    guidance=7.5,
    generation_width=128,
    size_multiple=8,
    dtype="float32",
    device="cpu",
    options={"motion": 0.35, "ip_adapter": None},
)
SPEC_CHANGES = {
    "prompt": "a man runs into a field, documentary still",
    "negative_prompt": "blurry, dark",
    "seed": 1002,
    "character_seeds": [1001],
    "location_seed": 5001,
    "frames": 7,
    "fps": 4.0,
    "width": 640,
    "height": 360,
    "steps": 4,
    "guidance": 5.0,
    "speech": "Hallo",
    "audio_caption": "wind",
    "handles": 1,
}
PROFILE_CHANGES = {
    "model": "reelforge/tiny-sdxl",
    "revision": "sha256:abd",
    "pipeline": "StableDiffusionXLPipeline",
    "scheduler": "DPMSolverMultistepScheduler:0f",
    "steps": 4,
    "guidance": 6.0,
    "generation_width": 256,
    "size_multiple": 16,
    "dtype": "float16",
    "device": "cuda",
    "options": {"motion": 0.4, "ip_adapter": None},
}


def test_the_same_spec_gives_the_same_key() -> None:
    again = RenderSpec.model_validate_json(SPEC.model_dump_json())
    assert shot_key(SPEC, PROFILE, []) == shot_key(again, PROFILE.model_copy(), [])
    assert len(shot_key(SPEC, PROFILE, [])) == 64


@pytest.mark.parametrize("field", sorted(SPEC_CHANGES))
def test_a_change_of_any_spec_field_changes_the_key(field: str) -> None:
    changed = SPEC.model_copy(update={field: SPEC_CHANGES[field]})
    assert shot_key(changed, PROFILE, []) != shot_key(SPEC, PROFILE, [])


def test_a_spec_without_handles_keeps_the_key_it_had_before_handles_existed() -> None:
    # RenderSpec.handles came later: stored shots of specs without handles are still found by their keys.
    spec = SPEC.model_dump(mode="json", exclude={"reference_images", "start_frame", "cast_sheet", "handles"})
    before = {
        "code": RENDER_CODE_VERSION,
        "spec": spec,
        "references": [],
        "previous": None,
        "profile": PROFILE.model_dump(mode="json"),
    }
    assert shot_key(SPEC, PROFILE, []) == json_digest(before)


@pytest.mark.parametrize("field", sorted(PROFILE_CHANGES))
def test_a_change_of_the_model_or_its_settings_changes_the_key(field: str) -> None:
    changed = PROFILE.model_copy(update={field: PROFILE_CHANGES[field]})
    assert shot_key(SPEC, changed, []) != shot_key(SPEC, PROFILE, [])


def test_conditioning_inputs_and_the_previous_shot_are_in_the_key() -> None:
    base = shot_key(SPEC, PROFILE, ["sha256:11"])
    assert shot_key(SPEC, PROFILE, ["sha256:12"]) != base
    assert shot_key(SPEC, PROFILE, []) != base
    after_a, after_b = (
        SPEC.model_copy(update={"start_frame": StartFrame(frame_key=f"jobs/j-{p}/f.png", shot_key=p * 64)}) for p in "ab"
    )
    assert shot_key(after_a, PROFILE, ["sha256:11"]) != base
    assert shot_key(after_a, PROFILE, ["sha256:11"]) != shot_key(after_b, PROFILE, ["sha256:11"])
    # where the previous shot's frame lies is not in the key: only which shot it is
    elsewhere = after_a.model_copy(update={"start_frame": StartFrame(frame_key="jobs/j-other/f.png", shot_key="a" * 64)})
    assert shot_key(elsewhere, PROFILE, ["sha256:11"]) == shot_key(after_a, PROFILE, ["sha256:11"])


def test_a_cast_sheet_is_a_shot_of_its_own_whose_key_is_in_the_segments_key() -> None:
    gardener = CastSheet(kind="character", name="gardener", prompt="an old gardener", seed=1000)
    with_sheet = SPEC.model_copy(update={"cast_sheet": [gardener]})
    assert shot_key(with_sheet, PROFILE, []) != shot_key(SPEC, PROFILE, [])
    # a changed description is another sheet, and so another key for every segment conditioned on it
    red = with_sheet.model_copy(update={"cast_sheet": [gardener.model_copy(update={"prompt": "an old gardener, red coat"})]})
    assert sheet_key(red, red.cast_sheet[0], PROFILE) != sheet_key(with_sheet, gardener, PROFILE)
    assert shot_key(red, PROFILE, []) != shot_key(with_sheet, PROFILE, [])
    # the sheet is one still of its own prompt and seed: the segment's prompt, frames and rate are no part of it
    other_segment = with_sheet.model_copy(update={"prompt": "he digs", "frames": 9, "fps": 8.0, "seed": 7})
    assert sheet_key(other_segment, gardener, PROFILE) == sheet_key(with_sheet, gardener, PROFILE)
    assert sheet_spec(with_sheet, gardener).frames == 1
    assert sheet_spec(with_sheet, gardener).prompt == "an old gardener"


def test_reference_images_in_the_work_bucket_count_by_content(store: ObjectStore, settings) -> None:
    bucket = settings.work_bucket
    store.put_bytes(bucket, "jobs/j-1/refs/a.png", b"one picture")
    store.put_bytes(bucket, "jobs/j-2/refs/b.png", b"one picture")
    store.put_bytes(bucket, "jobs/j-3/refs/c.png", b"another picture")
    hashes = [
        reference_hashes(SPEC.model_copy(update={"reference_images": [k]}), store, bucket)[0]
        for k in ("jobs/j-1/refs/a.png", "jobs/j-2/refs/b.png", "jobs/j-3/refs/c.png")
    ]
    assert hashes[0] == hashes[1] != hashes[2]
    assert reference_hashes(SPEC.model_copy(update={"reference_images": ["https://example.com/x.png"]}), store, bucket) == [
        "ref:https://example.com/x.png"
    ]


def test_the_model_revision_follows_its_config_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (model / "unet" / "config.json").write_text(json.dumps({"layers": 2}))
    first = model_revision(str(model))
    (model / "unet" / "config.json").write_text(json.dumps({"layers": 3}))
    assert model_revision(str(model)) != first
    snapshot = tmp_path / "models--org--name" / "snapshots" / ("c0ffee" * 6 + "abcd")
    snapshot.mkdir(parents=True)
    assert model_revision(str(snapshot)) == "hf:" + "c0ffee" * 6 + "abcd"


def test_an_owner_folder_is_never_a_path() -> None:
    assert owner_folder("ci") == "ci"
    assert owner_folder(None) == "local"
    assert "/" not in owner_folder("../other")
    assert owner_folder("../other").startswith("h-")
