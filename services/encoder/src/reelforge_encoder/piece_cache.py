"""The pieces and transition spans this encoder stored, kept on its own disk for the film step.

A film joined by copy needs every segment's pieces (the film's and each crop's: about 125 MB for the
Apfelbaum film). The encoder that encoded a segment had them on its disk; fetching them back from S3
on the film's tail is a download of bytes it wrote minutes before. Each piece it stores is kept here
(a hard link, no copy) under its key with the ETag S3 gave the upload; the film step asks S3 only for
the ETag (one HEAD) and takes the kept file when the ETag is the stored object's, else it downloads
the object as before. With several encoders, each keeps what it encoded: the film step downloads the
rest. The cache holds at most ``limit_bytes`` (``REELFORGE_PIECE_CACHE_MB``), least recently used
out first; it lives in a temporary folder that is removed with the cache (at the latest when the process
exits).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from reelforge_shared.storage import ObjectStore


def _link(source: Path, out: Path) -> Path:
    """``out`` as another name of ``source``'s bytes (a hard link; a copy across file systems)."""
    out.unlink(missing_ok=True)
    try:
        os.link(source, out)
    except OSError:
        shutil.copyfile(source, out)
    return out


@dataclass(slots=True)
class PieceCache:
    limit_bytes: int
    # removed when the cache is dropped or the interpreter exits (TemporaryDirectory's finalizer)
    _tmp: tempfile.TemporaryDirectory = field(default_factory=lambda: tempfile.TemporaryDirectory(prefix="reelforge-pieces-"))
    _entries: OrderedDict[str, tuple[Path, str, int]] = field(default_factory=OrderedDict)  # key -> file, ETag, size
    _size: int = 0
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, key: str, path: Path, etag: str) -> None:
        """Keep ``path`` (just stored under ``key`` with ``etag``); the oldest entries go when over the limit."""
        size = path.stat().st_size
        if not etag or size > self.limit_bytes:
            return
        with self._lock:
            self._count += 1
            kept = _link(path, self.folder / f"{self._count:08d}{path.suffix}")
            self._drop(key)
            self._entries[key] = (kept, etag, size)
            self._size += size
            while self._size > self.limit_bytes and self._entries:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        if (entry := self._entries.pop(key, None)) is not None:
            entry[0].unlink(missing_ok=True)
            self._size -= entry[2]

    def get_file(self, store: ObjectStore, bucket: str, key: str, out: Path) -> Path:
        """The object ``key`` as the file ``out``: the kept file when S3 still holds those very bytes, else downloaded."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is not None and store.etag(bucket, key) == entry[1]:
            with self._lock:
                if self._entries.get(key) is entry:  # not dropped meanwhile: its file is still there
                    return _link(entry[0], out)
        return store.get_file(bucket, key, out)

    @property
    def folder(self) -> Path:
        return Path(self._tmp.name)

    def close(self) -> None:
        """Drop every kept file and the folder."""
        with self._lock:
            self._entries.clear()
            self._size = 0
            self._tmp.cleanup()

    @property
    def size_bytes(self) -> int:
        return self._size

    def __contains__(self, key: str) -> bool:
        return key in self._entries
