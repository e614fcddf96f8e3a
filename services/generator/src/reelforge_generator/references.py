"""Characters' reference images, as the handler downloaded them from the job's own stored objects."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from reelforge_shared.errors import InvalidInput
from reelforge_shared.references import open_image

MAX_PIXELS = 4096 * 4096  # far above any model's input; a bigger image is a mistake or a decompression bomb


def load_references(sources: list[str]) -> list[Image.Image]:
    """RGB images from local files (``stored_references`` put them there); one that does not decode is invalid input.

    Decoding goes through :func:`reelforge_shared.references.open_image`: PNG, JPEG or WebP only, the
    pixel cap checked before decoding, a decompression bomb refused at once (never retried).
    """
    images = []
    for i, source in enumerate(sources):
        try:
            data = Path(source).read_bytes()
        except OSError as exc:  # a local run's own file (the handler's downloads always exist)
            raise InvalidInput(f"reference_images[{i}] {source!r} cannot be read: {exc.strerror}") from None
        images.append(open_image(data, f"reference_images[{i}]", MAX_PIXELS))
    return images
