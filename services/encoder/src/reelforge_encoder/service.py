import shutil
from collections.abc import Callable
from typing import Any

from reelforge_encoder.codecs import build_codec
from reelforge_encoder.config import EncoderSettings
from reelforge_encoder.deliverables import MB
from reelforge_encoder.derived import handle_rendition
from reelforge_encoder.ffmpeg import ffmpeg_exe
from reelforge_encoder.handler import EncoderDeps, handle_deliverables, handle_film, handle_segment
from reelforge_encoder.kept_deliverables import KeptDeliverables
from reelforge_encoder.piece_cache import PieceCache
from reelforge_shared.flow import routes
from reelforge_shared.service import Service, open_store

Settings = EncoderSettings


def build(settings: EncoderSettings) -> Service:
    codec = build_codec(
        ffmpeg_exe(settings.ffmpeg, settings.ffmpeg_timeout_s),
        settings.video_codec,
        settings.video_quality,
        settings.crf,
        settings.preset,
    )
    deps = EncoderDeps(
        store=open_store(settings),
        bucket=settings.work_bucket,
        codec=codec,
        film_fps=settings.film_fps,
        espeak=settings.espeak or shutil.which("espeak-ng"),
        pieces=PieceCache(settings.piece_cache_mb * MB, settings.piece_cache_dir) if settings.piece_cache_mb else None,
        kept=KeptDeliverables(),  # the crops, stored after film.encoded (handle_deliverables)
    )
    handlers: dict[str, Callable[..., Any]] = {
        "handle_segment": handle_segment,
        "handle_film": handle_film,
        "handle_deliverables": handle_deliverables,
        "handle_rendition": handle_rendition,
    }
    return Service("encoder", settings, routes("encoder", handlers), deps)
