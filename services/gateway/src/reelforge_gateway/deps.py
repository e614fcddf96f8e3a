"""What the gateway's routes need, built once in :func:`reelforge_gateway.service.serve_http` and passed in.

Keyword-only dataclasses (every field named at the call site); a route reads them through the
``Deps`` annotation (FastAPI's ``Annotated`` dependency), never from globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from fastapi import Depends, Request

from reelforge_gateway.auth import Access
from reelforge_gateway.links import Links
from reelforge_gateway.streams import SharedStreams
from reelforge_shared.assets import AssetRegistry
from reelforge_shared.bus import Bus
from reelforge_shared.egress import Egress
from reelforge_shared.health import Health
from reelforge_shared.jobs import Ledger
from reelforge_shared.references import ReferenceLimits
from reelforge_shared.storage import ObjectStore
from reelforge_shared.storyboard import StoryboardLimits


@dataclass(kw_only=True, slots=True)
class VideoDefaults:
    """The settings of the endpoints compatible with the ``/api/video/*`` API (one prompt or image in, one MP4 out)."""

    text_to_video_model: str
    image_to_video_model: str
    max_duration_s: float = 30.0
    sync_timeout_s: float = 60.0
    allow_test_model: bool = False


@dataclass(kw_only=True, slots=True)
class GatewayDeps:
    bus: Bus
    store: ObjectStore
    ledger: Ledger
    streams: SharedStreams  # open event streams per token, counted in the job store across replicas
    health: Health
    links: Links
    work_bucket: str
    delivery_bucket: str = "f1-video-clips"
    access: Access = field(default_factory=lambda: Access(tokens={}, enabled=False))
    assets: AssetRegistry | None = None
    video: VideoDefaults | None = None
    limits: StoryboardLimits = field(default_factory=StoryboardLimits)
    egress: Egress | None = None  # the guard https references are fetched through (None: only uploads are accepted)
    reference_limits: ReferenceLimits = field(default_factory=ReferenceLimits)
    max_body_bytes: int = 5_000_000
    max_yaml_bytes: int = 256_000
    parse_timeout_s: float = 1.0
    max_upload_bytes: int = 20_000_000
    max_image_pixels: int = 4096 * 4096
    max_jobs_in_flight: int = 10
    sse_heartbeat_s: float = 15.0
    webhook_allow_private: bool = False
    ops_endpoints: Literal["public", "token", "internal"] = "public"
    default_model: str | None = None  # the generator's REELFORGE_MODEL: prompts of segments that name no model fit it
    shot_reuse: bool = True  # a shot the caller already rendered and passed is reused, not rendered (reelforge_shared.shots)


def get_deps(request: Request) -> GatewayDeps:
    deps: GatewayDeps = request.app.state.deps
    return deps


Deps = Annotated[GatewayDeps, Depends(get_deps)]
