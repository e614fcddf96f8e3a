"""Characters' reference images: a local path or an http(s) URL, as the storyboard names them."""

from __future__ import annotations

from diffusers.utils import load_image
from PIL import Image

from reelforge_shared.errors import InvalidInput


def load_references(sources: list[str]) -> list[Image.Image]:
    """RGB images; one that cannot be read is the storyboard's mistake, named with its source."""
    images = []
    for index, source in enumerate(sources):
        try:
            images.append(load_image(source).convert("RGB"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"reference_images[{index}] {source!r} cannot be read: {exc}") from exc
    return images
