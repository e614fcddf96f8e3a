"""Reelforge's tiny random-weight test models, one per supported family, built on first use.

No machine here can download weights, so the demo and the tests use these: the real diffusers
classes at a toy width, written with ``save_pretrained`` and loaded back through the same
``from_pretrained`` path as any real model. A ``reelforge_model.json`` beside ``model_index.json``
marks them (``random_weights: true``), and outputs say so. The worker only asks
:func:`resolve_model` for a path; nothing here imports the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reelforge_tiny import hunyuan, image, ltx2, video, wan
from reelforge_tiny.common import FORMAT, MARKER, model_marker

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "reelforge/tiny-sd": image.build_tiny_sd,
    "reelforge/tiny-sdxl": image.build_tiny_sdxl,
    "reelforge/tiny-sdxl-turbo": image.build_tiny_sdxl_turbo,
    "reelforge/tiny-zeroscope": video.build_tiny_zeroscope,
    "reelforge/tiny-animatediff": video.build_tiny_animatediff,
    "reelforge/tiny-svd": video.build_tiny_svd,
    "reelforge/tiny-wan": wan.build_tiny_wan,
    "reelforge/tiny-ltx2": ltx2.build_tiny_ltx2,
    "reelforge/tiny-ltx2-i2v": ltx2.build_tiny_ltx2_i2v,
    "reelforge/tiny-wan-i2v": wan.build_tiny_wan_i2v,
    "reelforge/tiny-hunyuanvideo15": hunyuan.build_tiny_hunyuanvideo15,
    "reelforge/tiny-hunyuanvideo15-i2v": hunyuan.build_tiny_hunyuanvideo15_i2v,
}
TINY_MODELS = tuple(BUILDERS)

__all__ = ["BUILDERS", "FORMAT", "MARKER", "TINY_MODELS", "model_marker", "resolve_model"]


def resolve_model(name: str, cache_dir: Path) -> str:
    """A built-in tiny model's local path (built on first use), or ``name`` unchanged."""
    if name not in BUILDERS:
        return name
    path = cache_dir.expanduser() / f"{name.replace('/', '--')}-v{FORMAT}"
    if not (path / MARKER).exists():
        BUILDERS[name](path)
    return str(path)
