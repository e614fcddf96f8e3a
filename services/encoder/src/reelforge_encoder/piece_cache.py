"""The pieces and transition spans this encoder stored, kept on its own disk for the film step.

A film joined by copy needs every segment's pieces (the film's and each crop's: about 125 MB for the
Apfelbaum film). The encoder that encoded a segment had them on its disk; fetching them back from S3
on the film's tail is a download of bytes it wrote minutes before. Each piece it stores is kept here
(a hard link, no copy) under its key with the ETag S3 gave the upload; the film step asks S3 only for
the ETag (one HEAD) and takes the kept file when the ETag is the stored object's, else it downloads
the object as before. With several encoders, each keeps what it encoded: the film step downloads the
rest. The cache holds at most ``limit_bytes`` (``REELFORGE_PIECE_CACHE_MB``), least recently used
out first; it lives in a temporary folder that is removed with the cache (at the latest when the process
exits), or, with ``keep_in`` (``REELFORGE_PIECE_CACHE_DIR``), in a folder of its own that outlives the process:
each file there has a record beside it (its key, ETag and size), and the next cache over that folder (the encoder of the
next ``reelforge run`` in the same OUT, an encoder restarted in its pod) takes them up, so an edit's film step does not
download the pieces of every shot it did not render. One encoder per folder.
"""

from __future__ import annotations

import hashlib
import json
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


RECORD = ".kept.json"  # beside each file of a cache folder of its own: {"key", "etag", "size"}


@dataclass(slots=True)
class PieceCache:
    limit_bytes: int
    keep_in: Path | None = None  # a folder that outlives the process; None: a temporary one, removed with the cache
    # removed when the cache is dropped or the interpreter exits (TemporaryDirectory's finalizer)
    _tmp: tempfile.TemporaryDirectory | None = None
    _folder: Path = field(init=False)  # keep_in, or the temporary folder
    _entries: OrderedDict[str, tuple[Path, str, int]] = field(default_factory=OrderedDict)  # key -> file, ETag, size
    _size: int = 0
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.keep_in is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="reelforge-pieces-")
            self._folder = Path(self._tmp.name)
        else:
            self._folder = self.keep_in
            self._folder.mkdir(parents=True, exist_ok=True)
            self._take_up()

    def _take_up(self) -> None:
        """What an earlier cache kept in ``keep_in``, oldest first, to the limit; a file without a record (a process killed
        between the two) or a record without its file is removed."""
        records = sorted(self.folder.glob(f"*{RECORD}"), key=lambda r: r.stat().st_mtime_ns)
        vouched = set()
        for record in records:
            kept = record.with_name(record.name.removesuffix(RECORD))
            try:
                entry = json.loads(record.read_text())
                key, etag, size = str(entry["key"]), str(entry["etag"]), int(entry["size"])
                ok = kept.stat().st_size == size
            except (OSError, ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                record.unlink(missing_ok=True)
                kept.unlink(missing_ok=True)
                continue
            vouched.add(kept.name)
            self._entries[key] = (kept, etag, size)
            self._size += size
        for stray in self.folder.iterdir():
            if not stray.name.endswith(RECORD) and stray.name not in vouched:
                stray.unlink(missing_ok=True)
        self._within_limit()

    def _file_for(self, key: str, suffix: str) -> Path:
        if self.keep_in is not None:  # found again by its key
            return self.folder / f"{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}{suffix}"
        self._count += 1
        return self.folder / f"{self._count:08d}{suffix}"

    def keep(self, key: str, path: Path, etag: str) -> None:
        """Keep ``path`` (just stored under ``key`` with ``etag``); the oldest entries go when over the limit."""
        size = path.stat().st_size
        if not etag or size > self.limit_bytes:
            return
        with self._lock:
            self._drop(key)
            kept = _link(path, self._file_for(key, path.suffix))
            if self.keep_in is not None:  # written after the file: a record always names a whole file
                record = {"key": key, "etag": etag, "size": size}
                kept.with_name(kept.name + RECORD).write_text(json.dumps(record))
            self._entries[key] = (kept, etag, size)
            self._size += size
            self._within_limit()

    def _within_limit(self) -> None:
        while self._size > self.limit_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        if (entry := self._entries.pop(key, None)) is not None:
            entry[0].with_name(entry[0].name + RECORD).unlink(missing_ok=True)
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
        return self._folder

    def close(self) -> None:
        """Drop every kept file and the folder; a folder of its own (``keep_in``) stays as it is, for the next cache."""
        with self._lock:
            self._entries.clear()
            self._size = 0
            if self._tmp is not None:
                self._tmp.cleanup()

    @property
    def size_bytes(self) -> int:
        return self._size

    def __contains__(self, key: str) -> bool:
        return key in self._entries
