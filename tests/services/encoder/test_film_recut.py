"""A re-cut film's pieces (issue 19 point 3) with real ffmpeg: a range of a stored render is copied packet for packet
between the keyframes inside it and encoded again only where it starts or ends off a keyframe, and its timestamps are
written anew without touching a packet; a cut whose transitions overlap inside an entry is refused naming it. A re-cut
film of renders with sound and handles (on a real S3 server) has sound as long as its pictures, each entry's own sound
from its in-point and silence under a handle, found again by pitch frame by frame."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelforge_encoder.ffmpeg import Codec, encode_frames, ffmpeg_exe
from reelforge_encoder.film_recut import body_piece, check_cut, cut_board, keyframes, retime
from reelforge_encoder.handler import EncoderDeps, handle_film, handle_segment
from reelforge_shared.errors import PermanentError
from reelforge_shared.events import CutEntry, FilmRequested, ModelInfo, SegmentGenerated
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard

FPS = 6


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(int) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Codec]:
    """24 frames of a moving test pattern encoded as the encoder encodes a segment: GOPs start at 0, 5, 12 and 20."""
    work = tmp_path_factory.mktemp("recut")
    exe = ffmpeg_exe()
    raw = work / "raw.mp4"
    pattern = f"testsrc2=size=64x36:rate={FPS}:duration=4"
    subprocess.run([exe, "-loglevel", "error", "-f", "lavfi", "-i", pattern, "-vf", "format=yuv420p", str(raw)], check=True)
    codec = Codec(exe=exe, preset="veryfast")
    return encode_frames(raw, FPS, 64, 36, work / "segment.mp4", codec, None, [0, 5, 12, 24], [20]), codec


@pytest.mark.parametrize(
    ("first", "end", "copied"),
    [
        (0, 24, 24),  # the whole render: copied
        (5, 12, 7),  # keyframe to keyframe: copied
        (12, 24, 12),  # keyframe to the end
        (3, 17, 7),  # off a keyframe at both ends: 5..12 copied, 3..5 and 12..17 encoded again
        (5, 22, 15),  # 5..20 copied, 20..22 encoded
        (7, 9, 0),  # inside one GOP: encoded
    ],
)
def test_a_range_is_copied_between_its_keyframes_and_encoded_only_off_them(
    render: tuple[Path, Codec], tmp_path: Path, first: int, end: int, copied: int
) -> None:
    source, codec = render
    assert keyframes(source) == (24, [0, 5, 12, 20])
    piece = body_piece(source, first, end, tmp_path / "piece.mp4", FPS, codec)
    assert (piece.copied, piece.encoded) == (copied, end - first - copied)
    got, want = _frames(piece.path), _frames(source)[first:end]
    assert len(got) == end - first
    assert max(float(np.abs(a - b).mean()) for a, b in zip(got, want, strict=True)) < 3  # the same frames, in order
    if copied == end - first:  # copied: the very same pictures
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    _, starts = keyframes(piece.path)
    assert starts[0] == 0  # the piece starts on a keyframe: the film joins it by copy
    # Its timestamps written anew: the same packets, frame k at k / fps, as long as its frames.
    retimed = retime(piece.path, FPS, tmp_path / "retimed.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(_frames(retimed), got, strict=True))
    with av.open(str(retimed)) as container:
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx((end - first) / FPS)
        times = [float(p.pts * stream.time_base) for p in container.demux(stream) if p.size and p.pts is not None]
    assert sorted(times) == pytest.approx([k / FPS for k in range(end - first)])


def test_a_cut_plays_as_a_storyboard_of_its_entries_and_overlapping_transitions_are_refused() -> None:
    board = parse_storyboard(
        {"segments": [{"id": "a", "prompt": "x", "frames": 6, "fps": FPS}, {"id": "b", "prompt": "y", "frames": 6, "fps": FPS}]}
    )
    cut = [
        CutEntry(index=2, source_in=0, source_out=4),
        CutEntry(index=1, source_in=1, source_out=6, transition="dissolve", transition_frames=4),
    ]
    played = cut_board(board, cut, FPS)
    assert [(s.id, s.frames, s.transition.type) for s in played.segments] == [("b", 4, "cut"), ("a", 5, "dissolve")]
    assert [c.count for c in check_cut(board, cut, FPS)] == [4, 5]
    too_long = [cut[0], cut[1].model_copy(update={"transition_frames": 12})]
    with pytest.raises(PermanentError, match="overlap"):
        check_cut(board, too_long, FPS)
    with pytest.raises(PermanentError, match="cut entry 1 names segment 3"):
        check_cut(board, [CutEntry(index=3, source_in=0, source_out=2)], FPS)


# Two shots of 6 frames with handles of 3 (12 rendered frames each); each model's sound covers its whole render, a tone
# whose pitch steps with every rendered frame (segment n, frame k: ``_pitch``), so the pitch under a film frame says
# which entry's sound plays there and from which frame of its render. The stored sound is the middle's (frames 3..8).
FRAMES, HANDLE = 6, 3
RENDERED = FRAMES + 2 * HANDLE
SOUNDED = {
    "output": {"width": 64, "height": 36, "handles_s": HANDLE / FPS},
    "deliverables": {"crops": [], "thumbnail": False},
    "segments": [
        {"id": "open", "prompt": "walks", "frames": FRAMES, "fps": FPS},
        {"id": "close", "prompt": "sits", "frames": FRAMES, "fps": FPS},
    ],
}


def _pitch(n: int, k: int) -> float:
    return 700 * n - 400 + 50 * k  # segment 1: 300..850 Hz, segment 2: 1000..1550 Hz


def _sound_by_frame(path: Path) -> tuple[int, list[tuple[float, float]]]:
    """(video frames, each frame's (loudness, pitch) of the film's sound): the middle 60 % of each frame's time."""
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray().reshape(-1, f.samples).mean(axis=0) for f in container.decode(audio=0)])
    seconds = len(samples) / rate
    assert abs(seconds - frames / FPS) <= 1 / FPS, f"sound {seconds:.3f} s for {frames} frames at {FPS} fps"
    found = []
    for j in range(frames):
        window = samples[round((j + 0.2) / FPS * rate) : round((j + 0.8) / FPS * rate)]
        spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window)), 8 * len(window)))
        pitch = float(np.fft.rfftfreq(8 * len(window), 1 / rate)[int(np.argmax(spectrum))])
        found.append((float(np.sqrt(np.mean(window**2))), pitch))
    return frames, found


@pytest.mark.parametrize(
    "cut",
    [
        # reordered: the second shot's middle, then the first's
        [
            CutEntry(index=2, source_in=HANDLE, source_out=HANDLE + FRAMES),
            CutEntry(index=1, source_in=HANDLE, source_out=HANDLE + FRAMES),
        ],
        # trimmed: the first from inside its head handle to the middle's fourth frame, the second from its third into its tail
        [CutEntry(index=1, source_in=1, source_out=HANDLE + 4), CutEntry(index=2, source_in=HANDLE + 2, source_out=RENDERED - 1)],
    ],
    ids=["reordered", "trimmed"],
)
def test_a_re_cut_film_plays_each_entrys_sound_from_its_in_point(
    store: ObjectStore, settings: CommonSettings, tmp_path: Path, cut: list[CutEntry]
) -> None:
    job, bucket = f"j-recut-sound-{cut[0].index}", settings.work_bucket
    store.put_json(bucket, Keys.storyboard(job), SOUNDED)
    deps = EncoderDeps(store=store, bucket=bucket, codec=Codec(ffmpeg_exe(), preset="ultrafast"))
    model = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)
    for n in (1, 2):
        for i in range(RENDERED):
            buffer = io.BytesIO()
            Image.fromarray(np.full((36, 64, 3), 10 + 15 * i, np.uint8)).save(buffer, format="PNG")
            store.put_bytes(bucket, Keys.frame(job, n, i), buffer.getvalue(), "image/png")
        clip = tmp_path / f"clip{n}.wav"
        tone = f"aevalsrc=0.5*sin(2*PI*({700 * n - 400}+50*floor(t*{FPS}))*t):s=48000:d={RENDERED / FPS}"
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", tone, str(clip)], check=True)
        store.put_file(bucket, Keys.segment_audio(job, n), clip, "audio/wav")
        generated = SegmentGenerated(
            job_id=job,
            index=n,
            segment_id=SOUNDED["segments"][n - 1]["id"],
            frames_prefix=Keys.frames(job, n),
            frame_count=RENDERED,
            fps=FPS,
            width=64,
            height=36,
            model=model,
            audio_key=Keys.segment_audio(job, n),
        )
        handle_segment(generated, deps)

    [film] = handle_film(FilmRequested(job_id=job, segment_count=2, version=2, cut=cut), deps)
    frames, found = _sound_by_frame(store.get_file(bucket, Keys.film(job, 2), tmp_path / "final.mp4"))
    wanted = [(e.index, k) for e in cut for k in range(e.source_in, e.source_out)]  # each film frame's entry and frame
    assert film.frame_count == frames == len(wanted)
    loud = max(level for level, _ in found)
    for j, ((n, k), (level, pitch)) in enumerate(zip(wanted, found, strict=True)):
        if HANDLE <= k < HANDLE + FRAMES:  # the entry's sound at that frame of its render
            assert level > loud / 4, f"film frame {j} (frame {k} of segment {n}): {level}"
            assert pitch == pytest.approx(_pitch(n, k), abs=15), f"film frame {j} (frame {k} of segment {n}): {pitch} Hz"
        else:  # under a handle: silence
            assert level < loud / 50, f"film frame {j} (handle frame {k} of segment {n}): {level}"
