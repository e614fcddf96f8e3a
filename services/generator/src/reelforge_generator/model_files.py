"""Where model files are looked for at run time: local files only (a folder, or the warm Hugging Face cache).

Nothing is downloaded while rendering: pipelines and IP-Adapters load with ``local_files_only``. A
model that is not there is a permanent error naming the id and the place it was looked for.
"""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants

from reelforge_shared.errors import PermanentError


def model_not_found(name: str, path: str, exc: Exception, what: str = "model") -> PermanentError:
    """The id, where it was looked for, and why: run-time loading reads local files only, it never downloads."""
    if Path(path).expanduser().exists() or "/" not in name or name.startswith((".", "/", "~")):
        where = f"the local folder {Path(path).expanduser()}"
    else:
        where = f"the Hugging Face cache {huggingface_hub.constants.HF_HUB_CACHE} (nothing is downloaded at run time)"
    return PermanentError(f"cannot load {what} {name!r}: not found in {where}: {type(exc).__name__}: {exc}")
