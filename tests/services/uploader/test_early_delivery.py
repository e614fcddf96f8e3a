"""The film and its deliverables are delivered on film.encoded, while QA checks the film; film.checked copies only the
reports and completes the job with the same keys (issue 18 point 8: the film's copies off its tail)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from reelforge_shared.assets import S3AssetRegistry
from reelforge_shared.errors import TransientError
from reelforge_shared.events import FilmChecked, FilmDeliverablesStored, FilmEncoded, JobCompleted
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_uploader.delivery import Delivery
from reelforge_uploader.handler import UploaderDeps, handle_deliverables_stored, handle_film, handle_film_encoded
from reelforge_uploader.webhooks import WebhookDeps


@dataclass
class CountingStore(ObjectStore):
    """The real store, noting every server-side copy (source key)."""

    copied: list[str] = field(default_factory=list)

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        self.copied.append(src_key)
        super().copy(src_bucket, src_key, dst_bucket, dst_key)


def _deps(store: ObjectStore, settings: CommonSettings, registry: S3AssetRegistry) -> UploaderDeps:
    buckets = {"work_bucket": settings.work_bucket, "delivery_bucket": settings.delivery_bucket}
    return UploaderDeps(
        store=store,
        delivery=Delivery(store=store, registry=registry, **buckets),
        webhooks=WebhookDeps(secret=None, urls=[]),
        **buckets,
    )


def _film(store: ObjectStore, work: str, job: str, version: int = 1) -> tuple[FilmEncoded, FilmChecked]:
    film_key, crop = Keys.film(job, version), Keys.deliverable(job, "9x16", version)
    still = Keys.deliverable(job, "thumbnail", version)
    store.put_bytes(work, film_key, b"\1" * 4096)
    store.put_bytes(work, crop, b"\2" * 2048)
    store.put_bytes(work, still, b"\3" * 512)
    deliverables = {"9x16": crop, "thumbnail": still}
    store.put_json(work, Keys.film_meta(job, version), {"frame_count": 24, "deliverables": deliverables})
    store.put_json(work, Keys.report(job, version), {"segments": [{"index": 1, "qa_passed": True}]})
    facts = {"job_id": job, "version": version, "film_key": film_key, "duration_s": 1.0, "frame_count": 24, "fps": 24}
    encoded = FilmEncoded(**facts, width=64, height=64)
    checked = FilmChecked(
        **facts, width=64, height=64, passed=True, report_key=Keys.report(job, version), deliverables=deliverables
    )
    return encoded, checked


def test_the_film_is_delivered_while_qa_checks_it_and_not_copied_again(store: ObjectStore, settings: CommonSettings) -> None:
    job, work = "j-early", settings.work_bucket
    encoded, checked = _film(store, work, job)
    registry = S3AssetRegistry(store, work)
    counting = CountingStore(store.client)
    deps = _deps(counting, settings, registry)

    assert handle_film_encoded(encoded, deps) == []  # nothing announced: job.completed still waits for QA
    assert sorted(counting.copied) == sorted([encoded.film_key, *checked.deliverables.values()])
    assert store.get_bytes(settings.delivery_bucket, DeliveryKeys.film(job, 1)) == b"\1" * 4096
    assert store.exists(settings.delivery_bucket, DeliveryKeys.deliverable(job, "9x16", 1))

    counting.copied.clear()
    [completed] = handle_film(checked, deps)
    assert isinstance(completed, JobCompleted)
    assert counting.copied == [checked.report_key]  # only the report: the film and deliverables were delivered
    assert completed.film_key == DeliveryKeys.film(job, 1)
    assert completed.deliverables == {
        "9x16": DeliveryKeys.deliverable(job, "9x16", 1),
        "thumbnail": DeliveryKeys.deliverable(job, "thumbnail", 1),
    }
    names = sorted(row.name for row in registry.for_job(job))
    assert names == sorted([DeliveryKeys.film(job, 1), DeliveryKeys.report(job, 1), *completed.deliverables.values()])


def test_film_checked_delivers_what_film_encoded_did_not(store: ObjectStore, settings: CommonSettings) -> None:
    """No early delivery (an uploader that missed film.encoded, or it failed): film.checked delivers everything."""
    job, work = "j-late", settings.work_bucket
    _, checked = _film(store, work, job)
    counting = CountingStore(store.client)
    [completed] = handle_film(checked, _deps(counting, settings, S3AssetRegistry(store, work)))
    assert isinstance(completed, JobCompleted)
    assert sorted(counting.copied) == sorted([checked.film_key, checked.report_key, *checked.deliverables.values()])
    assert store.exists(settings.delivery_bucket, DeliveryKeys.film(job, 1))


def test_a_film_changed_after_its_early_delivery_is_delivered_again(store: ObjectStore, settings: CommonSettings) -> None:
    """The row names the bytes it delivered (source key and size): another film under the key is copied again."""
    job, work = "j-changed", settings.work_bucket
    encoded, checked = _film(store, work, job)
    registry = S3AssetRegistry(store, work)
    counting = CountingStore(store.client)
    deps = _deps(counting, settings, registry)
    handle_film_encoded(encoded, deps)
    store.put_bytes(work, encoded.film_key, b"\4" * 8192)
    counting.copied.clear()
    handle_film(checked, deps)
    assert encoded.film_key in counting.copied
    assert store.get_bytes(settings.delivery_bucket, DeliveryKeys.film(job, 1)) == b"\4" * 8192


@dataclass
class HeldStore(CountingStore):
    """The real store, whose copy of ``held`` waits for ``go`` (a crop still being copied on film.deliverables_stored),
    and fails once when ``fail``."""

    held: str = ""
    go: threading.Event = field(default_factory=threading.Event)
    copying: threading.Event = field(default_factory=threading.Event)
    fail: bool = False

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        if src_key != self.held:
            return super().copy(src_bucket, src_key, dst_bucket, dst_key)
        self.copied.append(src_key)  # counted as it starts
        self.copying.set()
        assert self.go.wait(10)
        if self.fail:
            self.fail = False  # the first copy fails, once
            raise TransientError(f"copy of {src_key} failed")
        return ObjectStore.copy(self, src_bucket, src_key, dst_bucket, dst_key)


def _film_checked_while_a_crop_is_copied(store: ObjectStore, settings: CommonSettings, *, fail: bool) -> HeldStore:
    """film.checked handled while this uploader's film.deliverables_stored handler is copying the crop."""
    job = "j-flight-fail" if fail else "j-flight"
    encoded, checked = _film(store, settings.work_bucket, job)
    held = HeldStore(store.client, held=checked.deliverables["9x16"], fail=fail)
    deps = _deps(held, settings, S3AssetRegistry(store, settings.work_bucket))
    stored = FilmDeliverablesStored.follow(encoded, film_key=encoded.film_key, deliverables=checked.deliverables)
    with ThreadPoolExecutor(max_workers=2) as pool:
        early = pool.submit(handle_deliverables_stored, stored, deps)
        assert held.copying.wait(10)
        checking = pool.submit(handle_film, checked, deps)
        time.sleep(0.3)  # film.checked has reached the crop: it must wait for the copy in flight, not start its own
        assert held.copied.count(checked.deliverables["9x16"]) == 1
        held.go.set()
        assert early.result() == []  # best effort: a failed early copy fails nothing
        [completed] = checking.result()
    assert isinstance(completed, JobCompleted)
    assert store.exists(settings.delivery_bucket, DeliveryKeys.deliverable(job, "9x16", 1))
    return held


def test_a_deliverable_being_copied_is_waited_for_not_copied_twice(store: ObjectStore, settings: CommonSettings) -> None:
    """film.checked found the crop stored while film.deliverables_stored was copying it: the one copy serves both."""
    held = _film_checked_while_a_crop_is_copied(store, settings, fail=False)
    assert held.copied.count(held.held) == 1


def test_a_copy_in_flight_that_fails_is_made_again_by_the_one_waiting(store: ObjectStore, settings: CommonSettings) -> None:
    held = _film_checked_while_a_crop_is_copied(store, settings, fail=True)
    assert held.copied.count(held.held) == 2  # the failed one, then film.checked's own
