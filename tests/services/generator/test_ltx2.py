"""LTX-2 makes sound with the picture: the tiny model renders a segment, its sound becomes the segment MP4's track.

Generator and encoder handlers on the real S3 server, then a storyboard through all five services;
the tiny random-weight LTX-2 is loaded with ``from_pretrained``; files are read back with PyAV.
"""

from __future__ import annotations

import io
import wave
from functools import partial
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from reelforge.stack import local_stack
from reelforge_encoder.ffmpeg import Codec, ffmpeg_exe
from reelforge_encoder.handler import EncoderDeps, handle_segment
from reelforge_generator.config import GeneratorSettings
from reelforge_generator.handler import GeneratorDeps, handle
from reelforge_generator.renderer import FrameRenderer
from reelforge_generator.sound_video import sound_prompt
from reelforge_shared.errors import InvalidInput
from reelforge_shared.events import JobCompleted, SegmentDelivered, SegmentRequested
from reelforge_shared.media import probe
from reelforge_shared.settings import CommonSettings
from reelforge_shared.specs import render_spec
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from reelforge_tiny import resolve_model
from support.factories import make_renderer

pytestmark = pytest.mark.slow  # builds the tiny LTX-2 (video and sound) and renders a film with it: minutes on two cores

STORYBOARD = {
    "output": {"width": 64, "height": 36},
    "segments": [
        {
            "id": "drums",
            "prompt": "a robot plays the drums <AUDCAP>a steady drum beat, a crowd cheering<ENDAUDCAP>",
            "frames": 8,
            "fps": 8,
        },
    ],
}


_renderer = partial(make_renderer, model="reelforge/tiny-ltx2", allow_test_model=True)


def test_ltx2_sound_is_the_segment_mp4s_audio_track(
    model_cache: Path, store: ObjectStore, settings: CommonSettings, tmp_path: Path
) -> None:
    job, bucket = "j-ltx2", settings.work_bucket
    board = parse_storyboard(STORYBOARD)
    store.put_json(bucket, Keys.storyboard(job), STORYBOARD)
    spec = render_spec(board, 1)
    assert "AUDCAP" not in spec.prompt
    assert spec.audio_caption == "a steady drum beat, a crowd cheering"
    deps = GeneratorDeps(store, bucket, _renderer(model_cache, clip_frames=4))  # two clips, each with its sound
    [generated] = handle(SegmentRequested(job_id=job, index=1, segment_id="drums", spec=spec), deps)
    assert (generated.model.pipeline, generated.frame_count, deps.renderer.last_run.batches) == ("LTX2Pipeline", 8, [4, 4])
    assert generated.audio_key == Keys.segment_audio(job, 1)
    assert "Sound: a steady drum beat, a crowd cheering." in (generated.prompt or "")  # the model hears it
    with wave.open(io.BytesIO(store.get_bytes(bucket, Keys.segment_audio(job, 1)))) as track:
        assert track.getnframes() == track.getframerate()  # 8 frames at 8 fps: one second of sound
        samples = np.frombuffer(track.readframes(track.getnframes()), np.int16)
    assert samples.std() > 10  # the vocoder's output (noise from random weights), not silence
    # Resume: a lost frame's clip is rendered again and the stored track stays; a lost track renders every clip.
    track = store.get_bytes(bucket, Keys.segment_audio(job, 1))
    store.remove(bucket, Keys.frame(job, 1, 3))
    handle(SegmentRequested(job_id=job, index=1, segment_id="drums", spec=spec), deps)
    assert deps.renderer.last_run.batches == [4]
    assert store.get_bytes(bucket, Keys.segment_audio(job, 1)) == track
    store.remove(bucket, Keys.segment_audio(job, 1))
    handle(SegmentRequested(job_id=job, index=1, segment_id="drums", spec=spec), deps)
    assert deps.renderer.last_run.batches == [4, 4]
    assert store.get_bytes(bucket, Keys.segment_audio(job, 1)) == track

    codec = Codec(ffmpeg_exe(), preset="ultrafast")
    [encoded] = handle_segment(generated, EncoderDeps(store=store, bucket=bucket, codec=codec))
    path = store.get_file(bucket, encoded.video_key, tmp_path / "segment.mp4")
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        video_s = float(video.duration * video.time_base)
        audio_s = float(audio.duration * audio.time_base)
        decoded = np.concatenate([frame.to_ndarray().ravel() for frame in container.decode(audio)])
    assert (video.frames, video_s) == (8, pytest.approx(1.0))
    assert audio.codec_context.name == "aac"
    assert audio_s == pytest.approx(video_s, abs=0.05)
    assert np.abs(decoded).max() > 1e-3  # the model's sound survived the mux

    # A model without sound: no track, no audio key.
    wan = FrameRenderer(GeneratorSettings(model_cache_dir=str(model_cache), steps=1, allow_test_model=True))
    plain = handle(
        SegmentRequested(job_id="j-plain", index=1, segment_id="drums", spec=spec, model="reelforge/tiny-wan"),
        GeneratorDeps(store, bucket, wan),
    )
    assert plain[0].audio_key is None
    assert not store.exists(bucket, Keys.segment_audio("j-plain", 1))


def test_ltx2_hears_the_speech_and_sound_tags_and_refuses_a_prompt_its_encoder_cannot_read(model_cache: Path) -> None:
    board = parse_storyboard(
        {
            "output": {"width": 64, "height": 36},
            "segments": [
                {
                    "id": "win",
                    "prompt": "a driver celebrates <S>Simply lovely!<E> <AUDCAP>engines revving<ENDAUDCAP>",
                    "frames": 1,
                    "fps": 8,
                }
            ],
        }
    )
    spec = render_spec(board, 1)
    assert "<S>" not in spec.prompt
    assert "AUDCAP" not in spec.prompt
    assert sound_prompt(spec) == f'{spec.prompt} Someone says: "Simply lovely!". Sound: engines revving.'
    renderer = _renderer(model_cache)
    renderer.setup()
    quiet = spec.model_copy(update={"speech": None, "audio_caption": None})
    assert dict(renderer.render(spec, [0])) != dict(renderer.render(quiet, [0]))  # the tags reach the model
    # One character is one token of the tiny tokenizer, and Gemma's begin token comes first: 1024 is the window.
    refused = r"segments\[\]\.prompt: 1025 tokens with its speech and sound captions, .* at most 1024"
    with pytest.raises(InvalidInput, match=refused):
        list(renderer.render(quiet.model_copy(update={"prompt": "a" * 1024}), [0]))
    with pytest.raises(InvalidInput, match=r"style\.negative_prompt: 1025 tokens, .* at most 1024"):
        list(renderer.render(quiet.model_copy(update={"negative_prompt": "a" * 1024}), [0]))


def test_ltx2_image_to_video_shares_the_weights_and_conditions_on_the_reference_image(model_cache: Path, tmp_path: Path) -> None:
    t2v, i2v = (Path(resolve_model(name, model_cache)) for name in ("reelforge/tiny-ltx2", "reelforge/tiny-ltx2-i2v"))
    weights = sorted(p.relative_to(t2v) for p in t2v.rglob("*.safetensors"))
    assert weights
    assert all((t2v / w).read_bytes() == (i2v / w).read_bytes() for w in weights)
    spec = render_spec(parse_storyboard(STORYBOARD), 1).model_copy(update={"frames": 2})
    images = {}
    for colour in ("red", "blue"):
        Image.new("RGB", (64, 36), colour).save(tmp_path / f"{colour}.png")
        images[colour] = spec.model_copy(update={"reference_images": [str(tmp_path / f"{colour}.png")]})
    renderer = _renderer(model_cache, model="reelforge/tiny-ltx2-i2v")
    renderer.setup()
    assert (renderer.model.pipeline, renderer.strategy.kind) == ("LTX2ImageToVideoPipeline", "image-to-video")
    frames = {colour: dict(renderer.render(shot, [0, 1])) for colour, shot in images.items()}
    assert renderer.last_run.sound[0].shape[-1] == 16_000 * 2 // 8  # with sound: 2 frames at 8 fps
    assert frames["red"] != frames["blue"]  # the picture starts from the reference image
    # The text-to-video model starts from a segment's reference image too, with the same parts: the same frames.
    text = _renderer(model_cache)
    text.setup()
    assert dict(text.render(images["red"], [0, 1])) == frames["red"] != dict(text.render(spec, [0, 1]))


async def test_a_storyboard_rendered_by_ltx2_becomes_a_film_with_its_sound(overrides, event_log, tmp_path: Path) -> None:
    """Through all five services: the speech the model voiced needs no espeak-ng, and every file has the model's sound."""
    board = {
        "title": "Drums",
        "model": "reelforge/tiny-ltx2",
        "output": {"width": 64, "height": 36},
        "segments": [
            {**STORYBOARD["segments"][0], "id": "play"},
            {"id": "bow", "prompt": "the robot bows <S>Thank you!<E>", "frames": 4, "fps": 8},
        ],
    }
    async with local_stack(tmp_path / "state", **overrides, steps=2) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
            job_id = (await client.post("/v1/jobs", json=board)).json()["job_id"]
            await event_log.wait_for(lambda: event_log.of(JobCompleted), timeout=300)
        store = ObjectStore.from_settings(stack.settings)
        delivered = sorted(event_log.of(SegmentDelivered), key=lambda e: e.index)
        assert [d.model.pipeline for d in delivered] == ["LTX2Pipeline"] * 2
        for d, seconds in zip(delivered, (1.0, 0.5), strict=True):
            segment = probe(store.get_file(stack.settings.delivery_bucket, d.delivery_key, tmp_path / f"{d.index}.mp4"))
            assert segment.has_audio
            assert segment.duration_s == pytest.approx(seconds, abs=0.05)
        film = probe(store.get_file(stack.settings.delivery_bucket, DeliveryKeys.film(job_id), tmp_path / "final.mp4"))
        assert film.has_audio
        assert film.duration_s == pytest.approx(1.5, abs=0.05)
