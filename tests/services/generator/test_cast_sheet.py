"""A cast sheet by default (issue 18 point 6): a character without a reference image is drawn once, and every segment
of an image-to-video model starts from that drawing.

The real generator service (the tiny image-to-video model, whose keyframes and sheets come from the tiny text-to-image
one) on a real bus and S3 server; the submissions are the gateway's ``submit_job``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reelforge.stack import local_stack
from reelforge_gateway.submit import submit_job
from reelforge_generator.config import GeneratorSettings
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.renderer import FrameRenderer
from reelforge_shared.bus import Bus
from reelforge_shared.events import SegmentGenerated, SegmentRequested
from reelforge_shared.settings import CommonSettings
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from reelforge_tiny import resolve_model
from support.media import pixels
from support.polling import counter_total

MODEL = "reelforge/tiny-svd"
FAST = {"steps": 2, "clip_frames": 2, "generation_width": 64, "allow_test_model": True, "model": MODEL}


def _sheets_rendered() -> float:
    """Cast sheet images the generators of this process rendered (reelforge_generator_cast_sheets_total)."""
    return counter_total("reelforge_generator_cast_sheets")


def _board(description: str, segments: int, *, cast_sheet: bool = True, location: bool = False) -> dict:
    place = {"location": "orchard"} if location else {}
    return {
        "title": "A cast",
        "output": {"width": 128, "height": 72},
        "style": {"cast_sheet": cast_sheet},
        "characters": {"gardener": {"description": description, "seed": 1000}},
        "locations": {"orchard": {"description": "an apple orchard", "seed": 5000}},
        "segments": [
            {"id": f"s{i}", "prompt": f"shot {i} of the garden", "characters": ["gardener"], "frames": 2, "fps": 2} | place
            for i in range(1, segments + 1)
        ],
    }


@pytest.mark.slow  # five films of tiny image-to-video segments: 55 s on two cores at load 10
async def test_a_cast_sheet_is_drawn_once_and_every_segment_starts_from_it(overrides, event_log, tmp_path: Path) -> None:
    async with local_stack(tmp_path / "state", names=["generator"], **overrides, **FAST) as stack:
        bus = await Bus.connect(stack.settings)
        store, bucket = ObjectStore.from_settings(stack.settings), stack.settings.work_bucket

        async def film(board: dict) -> tuple[str, dict[int, SegmentRequested], float]:
            before = _sheets_rendered()
            job = (await submit_job(parse_storyboard(board), bus=bus, store=store, bucket=bucket, owner="ana")).job_id

            def of(cls: type) -> dict:
                return {e.index: e for e in event_log.of(cls) if e.job_id == job}

            await event_log.wait_for(lambda: len(of(SegmentGenerated)) == len(board["segments"]), timeout=300)
            return job, of(SegmentRequested), _sheets_rendered() - before

        # One character in four segments: one sheet, drawn once, named in every segment's render record.
        job, requested, drawn = await film(_board("an old gardener in a green coat", 4))
        assert drawn == 1
        records = [store.get_json(bucket, Keys.segment_generation(job, n, 1, 0)) for n in range(1, 5)]
        sheets = {tuple((s["kind"], s["name"], s["key"]) for s in r["cast_sheet"]) for r in records}
        assert len(sheets) == 1
        ((kind, name, key),) = sheets.pop()
        assert (kind, name) == ("character", "gardener")
        assert store.exists(bucket, Keys.cast_sheet("ana", key))
        sheet = tmp_path / "sheet.png"
        sheet.write_bytes(store.get_bytes(bucket, Keys.job_cast_sheet(job, key)))

        # Each segment starts from the sheet: exactly what the model makes of that image, not of its own keyframe.
        renderer = FrameRenderer(GeneratorSettings(model_cache_dir=overrides["model_cache_dir"], **FAST))
        renderer.setup()
        for n in (1, 4):
            spec = requested[n].spec
            from_sheet = dict(renderer.render(spec.model_copy(update={"reference_images": [str(sheet)]}), [0]))
            from_keyframe = dict(renderer.render(spec, [0]))
            rendered = pixels(store.get_bytes(bucket, Keys.frame(job, n, 0)))
            assert np.abs(rendered - pixels(from_sheet[0])).max() == 0
            assert np.abs(rendered - pixels(from_keyframe[0])).mean() > 1.0

        # The same character in another job of the same owner: the sheet is reused, not drawn again.
        again, _, drawn = await film(_board("an old gardener in a green coat", 1))
        assert drawn == 0
        assert store.exists(bucket, Keys.job_cast_sheet(again, key))

        # A changed description is another sheet (its key is in the segments' shot keys): drawn, and the shot differs.
        # (With the orchard too: image-to-video starts from one image, the gardener's sheet; the orchard's is not drawn.)
        changed, changed_requested, drawn = await film(_board("an old gardener in a red coat", 1, location=True))
        assert [s.name for s in changed_requested[1].spec.cast_sheet] == ["gardener", "orchard"]
        assert drawn == 1
        changed_record = store.get_json(bucket, Keys.segment_generation(changed, 1, 1, 0))
        assert [s["name"] for s in changed_record["cast_sheet"]] == ["gardener"]
        assert changed_record["cast_sheet"][0]["key"] != key
        assert changed_record["shot_key"] != records[0]["shot_key"]

        # cast_sheet: off draws none and conditions nothing on one.
        off, off_requested, drawn = await film(_board("a young gardener", 1, cast_sheet=False))
        assert drawn == 0
        assert off_requested[1].spec.cast_sheet == []
        assert store.list_keys(bucket, f"jobs/{off}/cast/") == []
        assert store.get_json(bucket, Keys.segment_generation(off, 1, 1, 0))["cast_sheet"] == []
        await bus.close()


def test_a_per_frame_model_with_a_configured_ip_adapter_draws_the_sheet_once_and_weighs_it(
    model_cache: Path, store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    """The tiny SD model with its IP-Adapter configured (REELFORGE_IP_ADAPTER): two segments of one character draw one
    sheet with the model itself; each segment's frame is what the model makes with that image as its reference."""
    adapter = resolve_model("reelforge/tiny-sd", model_cache)
    tiny = {"model_cache_dir": str(model_cache), "allow_test_model": True, "steps": 2, "generation_width": 64}
    configured = {"ip_adapter": adapter, "ip_adapter_weight": "ip_adapter/ip-adapter.safetensors"}
    renderer = FrameRenderer(GeneratorSettings(**tiny, **configured))
    deps = GeneratorDeps(store=store, bucket=settings.work_bucket, renderer=renderer)
    board = parse_storyboard({**_board("an old gardener in a green coat", 2), "segments": [
        {"id": f"s{i}", "prompt": f"shot {i}", "characters": ["gardener"], "frames": 1, "fps": 2} for i in (1, 2)
    ]})  # fmt: skip
    before = _sheets_rendered()
    for n in (1, 2):
        handle(SegmentRequested(job_id="j-sheet-sd", index=n, segment_id=f"s{n}", spec=render_spec(board, n)), deps)
    assert _sheets_rendered() - before == 1
    [sheet] = store.get_json(settings.work_bucket, Keys.segment_generation("j-sheet-sd", 2, 1, 0))["cast_sheet"]
    image = tmp_path / "sheet.png"
    image.write_bytes(store.get_bytes(settings.work_bucket, sheet["image"]))
    spec = render_spec(board, 2)
    weighed = dict(renderer.render(spec.model_copy(update={"reference_images": [str(image)]}), [0]))[0]
    plain = dict(renderer.render(spec, [0]))[0]
    rendered = pixels(store.get_bytes(settings.work_bucket, Keys.frame("j-sheet-sd", 2, 0)))
    assert np.abs(rendered - pixels(weighed)).max() == 0
    assert np.abs(rendered - pixels(plain)).mean() > 1.0
    # Without a configured IP-Adapter the model takes no reference: no sheet is drawn.
    deps.renderer = FrameRenderer(GeneratorSettings(**tiny))
    handle(SegmentRequested(job_id="j-sheet-none", index=1, segment_id="s1", spec=render_spec(board, 1)), deps)
    assert _sheets_rendered() - before == 1
    assert store.list_keys(settings.work_bucket, "jobs/j-sheet-none/cast/") == []
