"""Derived renditions of a stored film version (the API's editing utilities) made by the encoder's handler on a real S3
server: each kind's file, its record, a redelivery that encodes nothing, and a refusal that fails the rendition alone."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from reelforge_encoder.derived import handle_rendition
from reelforge_encoder.ffmpeg import Codec, ffmpeg_exe
from reelforge_encoder.handler import EncoderDeps
from reelforge_shared.events import RenditionEncoded, RenditionFailed, RenditionRequested, rendition_id
from reelforge_shared.media import probe
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore

STORYBOARD = {
    "output": {"width": 64, "height": 36, "fps": 12},
    "segments": [
        {"id": "open", "prompt": "walks", "frames": 12, "fps": 12, "narration": "Hello there"},
        {"id": "close", "prompt": "sits", "frames": 12, "fps": 12},
    ],
}


def _film(path: Path, sound: bool) -> Path:
    picture = ["-f", "lavfi", "-i", "testsrc=size=64x36:rate=12:duration=2"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", "-shortest"] if sound else []
    codecs = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", *picture, *tone, *codecs, str(path)], check=True)
    return path


@pytest.fixture
def stored(store: ObjectStore, settings: CommonSettings, tmp_path: Path) -> tuple[EncoderDeps, str]:
    """Job ``j-derive``: its storyboard, film version 2 with sound and version 1 without."""
    job, bucket = "j-derive", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), STORYBOARD)
    store.put_file(bucket, Keys.film(job, 2), _film(tmp_path / "v2.mp4", sound=True), "video/mp4")
    store.put_file(bucket, Keys.film(job, 1), _film(tmp_path / "v1.mp4", sound=False), "video/mp4")
    return EncoderDeps(store=store, bucket=bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast")), job


def _ask(job: str, version: int, spec: dict) -> RenditionRequested:
    event = RenditionRequested(job_id=job, version=version, rendition_id="0" * 16, rendition=spec)
    return event.model_copy(update={"rendition_id": rendition_id(event.rendition)})


def _made(deps: EncoderDeps, event: RenditionRequested, tmp_path: Path) -> Path:
    [done] = handle_rendition(event, deps)
    assert isinstance(done, RenditionEncoded)
    assert (done.version, done.rendition_id) == (event.version, event.rendition_id)
    assert done.key.startswith(f"jobs/{event.job_id}/v{event.version}/derived/{event.rendition_id}")
    return deps.store.get_file(deps.bucket, done.key, tmp_path / done.key.rsplit("/", 1)[-1])


def test_each_kind_is_made_from_the_stored_film_version(stored: tuple[EncoderDeps, str], tmp_path: Path) -> None:
    deps, job = stored
    fast = probe(_made(deps, _ask(job, 2, {"kind": "speed", "factor": 2}), tmp_path))
    assert fast.duration_s == pytest.approx(1.0, abs=0.1)
    assert fast.has_audio
    assert _made(deps, _ask(job, 2, {"kind": "audio", "format": "wav"}), tmp_path).read_bytes()[:4] == b"RIFF"
    with zipfile.ZipFile(_made(deps, _ask(job, 2, {"kind": "frames", "fps": 2, "format": "png"}), tmp_path)) as stills:
        assert sorted(stills.namelist()) == ["0001.png", "0002.png", "0003.png", "0004.png"]
    assert probe(_made(deps, _ask(job, 2, {"kind": "loop", "times": 3}), tmp_path)).duration_s == pytest.approx(6, abs=0.1)
    cut = probe(_made(deps, _ask(job, 2, {"kind": "trim", "start_s": 0.5, "end_s": 1.5}), tmp_path))
    assert cut.frame_count == 12
    vtt = _made(deps, _ask(job, 2, {"kind": "subtitles", "format": "vtt"}), tmp_path).read_text()
    assert "00:00:00.000 --> 00:00:01.000\nHello there" in vtt


def test_a_redelivered_request_re_announces_the_stored_rendition(stored: tuple[EncoderDeps, str], tmp_path: Path) -> None:
    deps, job = stored
    event = _ask(job, 2, {"kind": "loop", "times": 2})
    [first] = handle_rendition(event, deps)
    assert isinstance(first, RenditionEncoded)
    etag = deps.store.client.stat_object(deps.bucket, first.key).etag
    [again] = handle_rendition(event, deps)
    assert again == first.model_copy(update={"event_id": again.event_id, "occurred_at": again.occurred_at})
    assert deps.store.client.stat_object(deps.bucket, first.key).etag == etag


def test_a_rendition_the_film_cannot_give_fails_alone_and_says_why(stored: tuple[EncoderDeps, str]) -> None:
    deps, job = stored
    event = _ask(job, 1, {"kind": "audio", "format": "mp3"})  # version 1 is silent
    [failed] = handle_rendition(event, deps)
    assert isinstance(failed, RenditionFailed)
    assert "no sound to extract" in failed.error
    assert deps.store.get_json(deps.bucket, Keys.derived_meta(job, 1, event.rendition_id))["error"] == failed.error
    assert isinstance(failed.failure("encoder", "x"), RenditionFailed)  # never a job failure
