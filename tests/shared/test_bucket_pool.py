"""The tests' bucket pool never makes a bucket while it writes a new bucket's first byte (real SeaweedFS).

SeaweedFS 4.48's master deadlocks when both happen at once (``support.buckets``); with the pool making and writing
each bucket in one go, 8 threads making pairs hung the server after 576 to 1,344 buckets (37-59 s), and in two CI
runs. Made in one step and written in the next, 2,000 buckets went through (the server's volume limit, then "no
writable volumes", as expected). The hang takes a minute of load to show, so this test checks the order instead:
the pool's calls on a real store, watched for overlap.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from reelforge_shared.embedded import ACCESS_KEY, SECRET_KEY, EmbeddedServer
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import ObjectStore
from support.buckets import BATCH, BucketPool


class WatchedStore(ObjectStore):
    """The real store, counting the bucket makes and first writes in flight and any moment both were."""

    def __init__(self, store: ObjectStore) -> None:
        super().__init__(store.client)
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.overlaps: list[dict[str, int]] = []
        self.done: Counter[str] = Counter()

    def _during(self, kind: str, call: Callable[[], object]) -> None:
        with self.lock:
            self.running[kind] += 1
            if self.running["make"] and self.running["write"]:
                self.overlaps.append(dict(self.running))
        try:
            time.sleep(0.01)  # widen the window a concurrent call would fall in
            call()
        finally:
            with self.lock:
                self.running[kind] -= 1
                self.done[kind] += 1

    def ensure_bucket(self, bucket: str) -> None:
        self._during("make", lambda: super(WatchedStore, self).ensure_bucket(bucket))

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._during("write", lambda: super(WatchedStore, self).put_bytes(bucket, key, data, content_type))


def test_the_pool_makes_buckets_and_writes_their_first_byte_in_separate_steps(s3_server: EmbeddedServer) -> None:
    admin = CommonSettings(s3_endpoint=s3_server.url, s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY)
    store = WatchedStore(ObjectStore.from_settings(admin))
    pool = BucketPool(store)
    try:
        tags = [pool.take() for _ in range(2 * BATCH + 2)]  # the filler's batches and the takers' own pairs at once
    finally:
        pool.close()
    assert len(set(tags)) == len(tags)
    for tag in tags:
        for bucket in (f"work-{tag}", f"deliver-{tag}"):
            assert store.client.bucket_exists(bucket)
            assert list(store.client.list_objects(bucket)) == []  # warmed and empty again
    assert store.done["make"] >= 2 * len(tags)
    assert store.done["write"] >= 2 * len(tags)
    assert store.overlaps == []
