"""Each test's own pair of S3 buckets, made and written once ahead of the test on a background thread.

SeaweedFS gives a new bucket its volume on the first write, and that write waits about 0.2 s (measured on the
2-core machine, quiet or not); a test writing to its work and delivery buckets waited 0.4 s before it did
anything. The pool makes the pairs ahead, eight at a time, writes and removes one byte in each (so the volume
exists and the bucket is empty again), and hands each pair to one test only.

Buckets are made in one step and first written in another, never at once: SeaweedFS 4.48's master deadlocks when a
bucket is made (the S3 server lists the collections: ``Topology.ListCollections`` takes the collection map's read
lock, then takes it again) while a new bucket's first write adds its collection (the map's write lock waits between
the two reads and blocks both). Seen in two CI runs: every later S3 write answered "assign volume: context deadline
exceeded" and the session's tests failed one after the other; the goroutine dump showed the two.
"""

from __future__ import annotations

import queue
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from reelforge_shared.storage import ObjectStore

BATCH = 8  # pairs made at once; their first writes wait side by side


class BucketPool:
    """Tags ``t`` whose buckets ``work-{t}`` and ``deliver-{t}`` exist, are empty and have their volume."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._ready: queue.Queue[str] = queue.Queue()
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._step = threading.Lock()  # buckets made, or first written: one step at a time (see above)
        self._workers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bucket-pool")  # minio keeps 10 connections
        self._filler = threading.Thread(target=self._fill, name="bucket-pool", daemon=True)
        self._filler.start()

    def take(self) -> str:
        """A warmed pair's tag: one the filler made ahead, else one made now (the filler is told to make more)."""
        self._wanted.set()
        try:
            return self._ready.get_nowait()
        except queue.Empty:
            return self._make(uuid.uuid4().hex[:10])

    def close(self) -> None:
        self._stopped.set()
        self._wanted.set()
        self._filler.join(30)
        self._workers.shutdown(wait=True)

    def _make(self, tag: str) -> str:
        self._warm([f"work-{tag}", f"deliver-{tag}"])
        return tag

    def _warm(self, buckets: list[str]) -> None:
        """Make ``buckets`` side by side, then give each its volume (a byte written and removed) side by side."""
        with self._step:
            list(self._workers.map(self._store.ensure_bucket, buckets))
        with self._step:
            list(self._workers.map(self._first_write, buckets))

    def _first_write(self, bucket: str) -> None:
        self._store.put_bytes(bucket, ".warm", b"x")
        self._store.client.remove_object(bucket, ".warm")

    def _fill(self) -> None:
        while not self._stopped.is_set():
            if self._ready.qsize() >= BATCH:
                self._wanted.wait(1.0)
                self._wanted.clear()
                continue
            tags = [uuid.uuid4().hex[:10] for _ in range(BATCH)]
            buckets = [f"{kind}-{tag}" for tag in tags for kind in ("work", "deliver")]
            try:
                self._warm(buckets)
            except Exception:  # noqa: BLE001 - a test that finds the pool empty makes its own pair and fails there, with the error
                self._stopped.wait(1.0)
                continue
            for tag in tags:
                self._ready.put(tag)
