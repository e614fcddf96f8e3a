"""What film QA needs of each segment, computed when the segment is checked, so the film check decodes only its joins.

Segment QA decodes each segment as it arrives; the same pass keeps, for the film check later:

- the colour sample (evenly spaced frames and the frames at both ends: ``frames.ColourSample``),
- every frame as a 64x36 thumbnail (``transitions.THUMB``): cuts and flash frames over the film,
- the report's thumbnail strip (JPEG),
- the continuity descriptor of the colour sample (``descriptors.describe``): film QA compares the segments' own instead of
  describing every segment again on the film's tail,
- a digest of every frame's coded packet and of the stream's codec setup (``packet_digests``).

They are stored beside the segment's QA report as one ``.npz`` (no pickles). The film is joined by
stream copy, so outside its transitions its frames *are* the segments' frames: film QA lays the
segments' thumbnails end to end and decodes the film only where its packets are not the segments'
own (the transitions, anything that went wrong in the join) (``read_windows``), seeking to the
keyframe before each window. Equal packets from the same codec setup, in GOPs that start on an IDR,
decode to equal pictures, so comparing digests (a demux, no decode) proves the rest.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from reelforge_qa.descriptors import Descriptor, describe
from reelforge_qa.film_subject import Subject, describe_subject
from reelforge_qa.frames import COLOUR_WIDTH, EDGE, ColourSample, sample_indices, small_size
from reelforge_qa.transitions import THUMB

STRIP_FRAMES, STRIP_HEIGHT = 6, 72
READ_BUFFER = 1 << 20  # bytes per read from a file-like object (PyAV's default, 32 KiB, is a Python call per 32 KiB)


@dataclass(slots=True)
class SegmentFilmStats:
    sample: ColourSample
    thumbs: np.ndarray  # (frames, 36, 64, 3) BGR uint8
    strip: bytes  # JPEG
    subject: Subject  # the character, localised in the sampled frames (film_subject)
    packets: np.ndarray | None = None  # (frames,) uint64: digest of each frame's packet, in presentation order
    setup: int | None = None  # digest of the stream's codec setup (SPS/PPS): packets decode alike only under the same
    descriptor: Descriptor | None = None  # describe(sample.frames); None: kept before descriptors were, or of another shape

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        s, subject = self.sample, self.subject
        np.savez_compressed(
            buffer,
            frames=np.stack(s.frames),
            head=np.stack(s.head),
            tail=np.stack(s.tail),
            rate=np.array([s.frame_count, s.fps]),
            thumbs=self.thumbs,
            strip=np.frombuffer(self.strip, np.uint8),
            subject=np.array([subject.found, subject.height, subject.aspect]),
            subject_colour=subject.colour,
            subject_texture=subject.texture,
            subject_boxes=np.array(subject.boxes, np.int32).reshape(-1, 4),
            **self._digests(),
            **_descriptor_arrays(self.descriptor),
        )
        return buffer.getvalue()

    def _digests(self) -> dict[str, Any]:
        return {} if self.packets is None else {"packets": self.packets, "setup": np.array([self.setup or 0], np.uint64)}

    @classmethod
    def from_bytes(cls, data: bytes) -> SegmentFilmStats:
        z = _arrays(data)
        count, fps = z["rate"]
        sample = ColourSample(list(z["frames"]), list(z["head"]), list(z["tail"]), int(count), float(fps))
        found, height, aspect = (float(v) for v in z["subject"])
        boxes = [(int(a), int(b), int(c), int(d)) for a, b, c, d in z["subject_boxes"]]
        subject = Subject(found, height, aspect, z["subject_colour"], z["subject_texture"], boxes)
        packets, setup = (z["packets"], int(z["setup"][0])) if "packets" in z else (None, None)
        return cls(sample, z["thumbs"], z["strip"].tobytes(), subject, packets, setup, _descriptor_of(z))


# numpy parses each array's header with ast.literal_eval, and CPython 3.11's AST builder keeps its recursion depth per
# interpreter, not per thread (CPython gh-106905): parsed side by side in threads (film QA reads the segments' kept
# statistics so), a header failed with "SystemError: AST constructor recursion depth mismatch" now and then.
_HEADERS = threading.Lock()


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz: inflated side by side (zlib lets go of the GIL), their headers parsed one at a time."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {name.removesuffix(".npy"): z.read(name) for name in z.namelist()}
    with _HEADERS:
        return {name: np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False) for name, raw in members.items()}


def segment_film_stats(path: Path, sample_count: int) -> SegmentFilmStats:
    """One decode: the colour sample, every frame's thumbnail and the strip."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        cw, ch = small_size(stream.codec_context.width, stream.codec_context.height, COLOUR_WIDTH)
        colour, small = [], []
        for f in container.decode(stream):  # thumbnails made exactly as read_windows makes the film's
            colour.append(f.reformat(width=cw, height=ch, format="bgr24", interpolation="AREA").to_ndarray())
            small.append(f.reformat(width=THUMB[0], height=THUMB[1], format="bgr24", interpolation="AREA").to_ndarray())
    thumbs = np.stack(small)
    picks = sample_indices(len(colour), sample_count)
    sample = ColourSample([colour[i] for i in picks], colour[:EDGE], colour[-EDGE:], len(colour), fps)
    strip_picks = [colour[i] for i in sample_indices(len(colour), STRIP_FRAMES)]
    width = round(strip_picks[0].shape[1] * STRIP_HEIGHT / strip_picks[0].shape[0])
    strip = np.hstack([cv2.resize(f, (width, STRIP_HEIGHT), interpolation=cv2.INTER_AREA) for f in strip_picks])
    ok, data = cv2.imencode(".jpg", strip, [cv2.IMWRITE_JPEG_QUALITY, 80])
    packets, setup = packet_digests(path)
    subject, descriptor = describe_subject(sample.frames), describe(sample.frames)
    return SegmentFilmStats(sample, thumbs, data.tobytes() if ok else b"", subject, packets, setup, descriptor)


DESCRIPTOR = "descriptor_"  # prefix of the descriptor's arrays in the .npz, one per field of Descriptor


def _descriptor_arrays(descriptor: Descriptor | None) -> dict[str, Any]:
    """The descriptor as arrays, one per field (None fields left out), and the list of its fields."""
    if descriptor is None:
        return {}
    arrays: dict[str, Any] = {f"{DESCRIPTOR}fields": np.array([f.name for f in fields(Descriptor)])}
    for f in fields(descriptor):
        if (value := getattr(descriptor, f.name)) is not None:
            arrays[DESCRIPTOR + f.name] = np.asarray(value)
    return arrays


def _descriptor_of(z: dict[str, np.ndarray]) -> Descriptor | None:
    """The stored descriptor, or None when there is none or it has other fields than ``Descriptor`` now has (kept by an
    older segment QA: film QA describes that segment again)."""
    names = [f.name for f in fields(Descriptor)]
    if f"{DESCRIPTOR}fields" not in z or list(z[f"{DESCRIPTOR}fields"]) != names:
        return None
    values: dict[str, Any] = {}
    for name in names:
        array = z.get(DESCRIPTOR + name)
        values[name] = None if array is None else float(array) if array.ndim == 0 else array
    return Descriptor(**values)


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


@dataclass(frozen=True, slots=True)
class FilmPackets:
    """A video's packets as ``packet_digests`` gives them, and its frame rate."""

    digests: np.ndarray  # (frames,) uint64, by presentation frame number
    setup: int
    fps: float


def packet_digests(path: Path) -> tuple[np.ndarray, int]:
    """A digest of each frame's packet by presentation frame number (a demux, no decode), and of the codec setup.

    A frame number with no packet, or with two, gets digest 0 (it matches nothing).
    """
    packets = film_packets(path)
    return packets.digests, packets.setup


def film_packets(source: Path | io.RawIOBase) -> FilmPackets:
    """``packet_digests`` of a file, or of a file-like object read as it arrives (``ObjectStore.get_file_reading``: the
    film's packets digested while it downloads), with the stream's frame rate."""
    with av.open(str(source) if isinstance(source, Path) else source, "r", buffer_size=READ_BUFFER) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.time_base is None or not fps:
            raise ValueError(f"{source}: the video stream has no time base or rate")
        tb, start = float(stream.time_base), stream.start_time or 0
        found: dict[int, int] = {}
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                k = round((packet.pts - start) * tb * fps)
                found[k] = 0 if k in found else _digest(bytes(packet))
        setup = _digest(bytes(stream.codec_context.extradata or b""))
    digests = np.zeros(max(found, default=-1) + 1, np.uint64)
    for k, value in found.items():
        if k >= 0:
            digests[k] = value
    return FilmPackets(digests, setup, fps)


def read_windows(film: Path, windows: list[tuple[int, int]]) -> dict[int, np.ndarray]:
    """The film's frames in each ``[lo, hi)`` window as thumbnails, decoding from the keyframe before each window only."""
    found: dict[int, np.ndarray] = {}
    with av.open(str(film)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.time_base is None:
            raise ValueError(f"{film}: the video stream has no time base")
        tb = float(stream.time_base)
        start = stream.start_time or 0
        for lo, hi in sorted(windows):
            container.seek(start + int(lo / fps / tb), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                k = round((frame.pts - start) * tb * fps)
                if k >= hi:
                    break
                if k >= lo:
                    found[k] = frame.reformat(width=THUMB[0], height=THUMB[1], format="bgr24", interpolation="AREA").to_ndarray()
    return found
