"""The film's crops are stored after film.encoded (issue 18 point 8: the film's tail waited for their uploads), by the
encoder's own film.encoded handler; job.completed still means every deliverable delivered, and an encoder that lost
the crops it kept makes them again."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.services.encoder.test_handler import STORYBOARD, _deps, _generated

from reelforge_encoder.handler import EncoderDeps, handle_deliverables, handle_film, handle_segment
from reelforge_encoder.kept_deliverables import KeptDeliverables
from reelforge_shared.assets import S3AssetRegistry
from reelforge_shared.errors import TransientError
from reelforge_shared.events import FilmChecked, FilmDeliverablesStored, FilmEncoded, FilmRequested, JobCompleted
from reelforge_shared.media import probe
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_uploader.delivery import Delivery
from reelforge_uploader.handler import UploaderDeps, handle_deliverables_stored, handle_film_encoded
from reelforge_uploader.handler import handle_film as deliver_film
from reelforge_uploader.webhooks import WebhookDeps

CROPS = {"9x16": (50, 90), "1x1": (90, 90)}


def _uploader(store: ObjectStore, settings: CommonSettings) -> UploaderDeps:
    buckets = {"work_bucket": settings.work_bucket, "delivery_bucket": settings.delivery_bucket}
    registry = S3AssetRegistry(store, settings.work_bucket)
    return UploaderDeps(
        store=store,
        delivery=Delivery(store=store, registry=registry, **buckets),
        webhooks=WebhookDeps(secret=None, urls=[]),
        **buckets,
    )


def _film(store: ObjectStore, settings: CommonSettings, job: str) -> tuple[FilmEncoded, dict[str, str], EncoderDeps]:
    bucket = settings.work_bucket
    board = {**STORYBOARD, "segments": [STORYBOARD["segments"][0], {**STORYBOARD["segments"][1], "audio": None}]}
    store.put_json(bucket, Keys.storyboard(job), board | {"deliverables": {"crops": ["9:16", "1:1"]}})
    deps = dataclasses.replace(_deps(store, settings), kept=KeptDeliverables())
    for n in (1, 2):
        handle_segment(_generated(store, bucket, job, n), deps)
    [film] = handle_film(FilmRequested(job_id=job, segment_count=2), deps)
    assert isinstance(film, FilmEncoded)
    meta = store.get_json(bucket, Keys.film_meta(job))
    crops = {name: meta["deliverables"][name] for name in CROPS}
    assert list(meta["deliverables"]) == ["9x16", "1x1", "thumbnail"]  # all listed beside the film
    assert store.exists(bucket, film.film_key)
    assert store.exists(bucket, meta["deliverables"]["thumbnail"])
    assert not any(store.exists(bucket, key) for key in crops.values())  # film.encoded comes before the crops
    return film, meta["deliverables"], deps


def _check_crops(store: ObjectStore, bucket: str, crops: dict[str, str], frames: int, tmp_path: Path) -> None:
    for name, (width, height) in CROPS.items():
        crop = probe(store.get_file(bucket, crops[name], tmp_path / f"{name}.mp4"))
        assert (crop.width, crop.height, crop.frame_count) == (width, height, frames)


def test_film_encoded_comes_before_the_crops_and_the_job_completes_with_them_delivered(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    job, work, delivery = "j-crops-after", settings.work_bucket, settings.delivery_bucket
    film, deliverables, deps = _film(store, settings, job)
    uploader = _uploader(store, settings)

    assert handle_film_encoded(film, uploader) == []  # the film and thumbnail now; the crops are not stored yet
    assert store.exists(delivery, DeliveryKeys.film(job, 1))
    assert not store.exists(delivery, DeliveryKeys.deliverable(job, "9x16", 1))

    store.put_json(work, Keys.report(job, 1), {"segments": [{"index": 1, "qa_passed": True}]})
    facts = film.model_dump(include={"job_id", "version", "film_key", "duration_s", "frame_count", "fps", "width", "height"})
    checked = FilmChecked(**facts, passed=True, report_key=Keys.report(job, 1), deliverables=deliverables)
    with pytest.raises(TransientError, match="not stored yet"):  # QA was faster: film.checked waits, then retries
        deliver_film(checked, dataclasses.replace(uploader, deliverable_wait_s=0.4))

    # The encoder's own film.encoded stores the crops it kept while film.checked's retry waits for them.
    with ThreadPoolExecutor(max_workers=1) as pool:
        storing = pool.submit(handle_deliverables, film, deps)
        [completed] = deliver_film(checked, uploader)
        [stored] = storing.result()
    assert isinstance(completed, JobCompleted)
    for name in deliverables:
        assert store.exists(delivery, completed.deliverables[name])
    assert isinstance(stored, FilmDeliverablesStored)
    assert stored.deliverables == deliverables
    _check_crops(store, work, deliverables, film.frame_count, tmp_path)
    assert handle_deliverables_stored(stored, uploader) == []  # found delivered
    assert store.exists(delivery, DeliveryKeys.deliverable(job, "1x1", 1))


def test_an_encoder_without_the_kept_crops_makes_them_again(store: ObjectStore, settings: CommonSettings, tmp_path: Path) -> None:
    """The encoder that made the film died before storing the crops: film.encoded, redelivered to another encoder (or
    to it restarted), makes them again from the stored pieces."""
    job, work = "j-crops-again", settings.work_bucket
    film, deliverables, deps = _film(store, settings, job)
    other = dataclasses.replace(deps, kept=KeptDeliverables())
    [stored] = handle_deliverables(film, other)
    assert isinstance(stored, FilmDeliverablesStored)
    _check_crops(store, work, deliverables, film.frame_count, tmp_path)
    [again] = handle_deliverables(film, other)  # redelivered once more: everything stored, announced again
    assert again.deliverables == deliverables
