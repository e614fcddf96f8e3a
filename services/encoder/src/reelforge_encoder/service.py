from reelforge_encoder.config import EncoderSettings
from reelforge_encoder.ffmpeg import Codec, ffmpeg_exe
from reelforge_encoder.handler import EncoderDeps, handle_film, handle_segment
from reelforge_shared.events import FilmRequested, SegmentGenerated
from reelforge_shared.runner import Route
from reelforge_shared.service import Service, open_store

Settings = EncoderSettings


def build(settings: EncoderSettings) -> Service:
    codec = Codec(ffmpeg_exe(settings.ffmpeg), settings.video_codec, settings.crf, settings.preset)
    deps = EncoderDeps(store=open_store(settings), bucket=settings.work_bucket, codec=codec, film_fps=settings.film_fps)
    return Service("encoder", settings, [Route(SegmentGenerated, handle_segment), Route(FilmRequested, handle_film)], deps)
