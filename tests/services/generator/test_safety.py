"""Safe defaults: the test model is refused outside local mode, a missing model is named, library warnings are logged."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import diffusers.utils.logging
import pytest
from PIL import Image

from reelforge_generator.config import GeneratorSettings
from reelforge_generator.renderer import FrameRenderer, quiet_libraries
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import RenderSpec


def test_the_random_weight_test_model_is_refused_unless_allowed(model_cache: Path) -> None:
    settings = GeneratorSettings(model="reelforge/tiny-sd", model_cache_dir=str(model_cache), allow_test_model=False)
    with pytest.raises(PermanentError, match="REELFORGE_ALLOW_TEST_MODEL=1"):
        FrameRenderer(settings).setup()
    assert FrameRenderer(settings.model_copy(update={"allow_test_model": True})).setup().random_weights


def test_a_model_that_cannot_be_found_is_a_permanent_error_naming_id_and_place(tmp_path: Path) -> None:
    renderer = FrameRenderer(GeneratorSettings(model_cache_dir=str(tmp_path)))
    with pytest.raises(PermanentError, match=r"'nobody/no-such-model'.*Hugging Face cache .*nothing is downloaded"):
        renderer.setup("nobody/no-such-model")
    missing = tmp_path / "no-model-here"
    with pytest.raises(PermanentError, match=rf"not found in the local folder {missing}"):
        renderer.setup(str(missing))


def test_an_ip_adapter_that_cannot_be_found_is_a_permanent_error_naming_id_and_place(model_cache: Path, tmp_path: Path) -> None:
    """Loading an IP-Adapter reads local files only too (no download even without HF_HUB_OFFLINE)."""
    reference = tmp_path / "hero.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(reference)
    settings = GeneratorSettings(model_cache_dir=str(model_cache), allow_test_model=True, ip_adapter="nobody/no-adapter")
    renderer = FrameRenderer(settings)
    renderer.setup()
    spec = RenderSpec(prompt="a man", seed=1, frames=1, fps=3, width=64, height=64, reference_images=[str(reference)])
    with pytest.raises(
        PermanentError,
        match=r"IP-Adapter models/ip-adapter_sd15.safetensors of 'nobody/no-adapter'.*"
        r"Hugging Face cache .*nothing is downloaded",
    ):
        list(renderer.render(spec, [0]))


def test_library_warnings_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    logging.captureWarnings(False)  # pytest records warnings itself: hand them back to logging as a worker has them
    quiet_libraries()
    with caplog.at_level(logging.WARNING):
        diffusers.utils.logging.get_logger("diffusers.pipelines.any").warning("part of your input was truncated")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("old argument", FutureWarning, stacklevel=1)
    messages = [record.getMessage() for record in caplog.records]
    assert "part of your input was truncated" in messages
    assert any("old argument" in m for m in messages)
