"""ReadOnce on a real S3 server: the keys named up front are read once, side by side, and answered from memory, missing
ones included; other keys and writes go to the server."""

from __future__ import annotations

import pytest

from reelforge_shared.errors import PermanentError
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import ObjectStore, ReadOnce


def test_read_once_answers_from_memory_what_it_read(store: ObjectStore, settings: CommonSettings) -> None:
    bucket = settings.work_bucket
    store.put_json(bucket, "jobs/r/a.json", {"a": 1})
    store.put_bytes(bucket, "jobs/r/b.bin", b"\x00\x01")
    reads = ReadOnce.read(store, bucket, ["jobs/r/a.json", "jobs/r/b.bin", "jobs/r/missing.json", "jobs/r/a.json"])
    assert reads.found == {"jobs/r/a.json": b'{\n  "a": 1\n}', "jobs/r/b.bin": b"\x00\x01", "jobs/r/missing.json": None}
    store.remove(bucket, "jobs/r/a.json")  # read already: the answer does not change
    assert reads.exists(bucket, "jobs/r/a.json")
    assert reads.get_json(bucket, "jobs/r/a.json") == {"a": 1}
    assert not reads.exists(bucket, "jobs/r/missing.json")
    with pytest.raises(PermanentError, match="jobs/r/missing.json is not stored"):
        reads.get_bytes(bucket, "jobs/r/missing.json")
    # Not named up front: asked of the server, as are writes.
    reads.put_bytes(bucket, "jobs/r/c.bin", b"c")
    assert reads.exists(bucket, "jobs/r/c.bin")
    assert reads.get_bytes(bucket, "jobs/r/c.bin") == b"c"
    assert not reads.exists(bucket, "jobs/r/a.json".replace("a.json", "d.json"))
