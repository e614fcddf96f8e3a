"""The film's crops this encoder made but had not stored when it announced the film, kept on its own disk.

The film step stores the film (and its thumbnail: a few kB) and publishes ``film.encoded`` then: QA checks the film
while the crops (tens of MB each) are stored by the encoder's own ``film.encoded`` handler
(``handler.handle_deliverables``), which takes them from here. Each file is kept under its work-bucket key (a hard
link of the film step's file, no copy) until that handler drops it; an encoder that does not find a crop here (another
encoder made the film, or this one restarted) makes it again. At most ``limit_files`` are kept, the oldest out first;
the folder is removed with the object (at the latest when the process exits).
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from reelforge_encoder.piece_cache import _link


@dataclass(slots=True)
class KeptDeliverables:
    limit_files: int = 32
    _tmp: tempfile.TemporaryDirectory = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="reelforge-deliverables-")
    )
    _entries: OrderedDict[str, Path] = field(default_factory=OrderedDict)
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, key: str, path: Path) -> None:
        """Keep ``path`` (a final deliverable, to be stored under ``key``) past the film step's work folder."""
        with self._lock:
            self._count += 1
            kept = _link(path, Path(self._tmp.name) / f"{self._count:06d}{path.suffix}")
            if (old := self._entries.pop(key, None)) is not None:
                old.unlink(missing_ok=True)
            self._entries[key] = kept
            while len(self._entries) > self.limit_files:
                _, oldest = self._entries.popitem(last=False)
                oldest.unlink(missing_ok=True)

    def get(self, key: str) -> Path | None:
        with self._lock:
            return self._entries.get(key)

    def drop(self, key: str) -> None:
        """Forget ``key`` (stored now) and remove its file."""
        with self._lock:
            kept = self._entries.pop(key, None)
        if kept is not None:
            kept.unlink(missing_ok=True)
