from reelforge_qa.config import QaSettings
from reelforge_qa.handler import QaDeps, handle, handle_film
from reelforge_shared.flow import routes
from reelforge_shared.service import Service, open_store

Settings = QaSettings


def build(settings: QaSettings) -> Service:
    embedder = None
    if settings.qa_embedding_model:
        from reelforge_qa.embeddings import ClipEmbedder

        embedder = ClipEmbedder(settings.qa_embedding_model)
    deps = QaDeps(
        store=open_store(settings),
        bucket=settings.work_bucket,
        thresholds=settings.thresholds(),
        sample_frames=settings.sample_frames,
        max_attempts=settings.qa_max_attempts,
        film_thresholds=settings.film_thresholds(),
        embedder=embedder,
    )
    return Service("qa", settings, routes("qa", {"handle": handle, "handle_film": handle_film}), deps)
