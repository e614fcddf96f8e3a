"""One owner without an API identity: the same word in the job store, the shot store and the gateway with auth off."""

from __future__ import annotations

from reelforge_gateway.auth import Access
from reelforge_shared.jobs import LOCAL_OWNER, JobRecord
from reelforge_shared.shots import owner_folder


def test_the_owner_without_an_identity_is_local_everywhere() -> None:
    assert LOCAL_OWNER == "local"
    assert Access(tokens={}, enabled=False).caller(None) == LOCAL_OWNER  # the gateway with auth off
    assert JobRecord(job_id="j-1", segment_count=1).owner == LOCAL_OWNER  # jobs put straight onto the bus
    assert owner_folder(None) == LOCAL_OWNER  # their shots: shots/local/{key}/
    assert owner_folder(Access(tokens={}, enabled=False).caller(None)) == LOCAL_OWNER  # `reelforge run` and auth off
