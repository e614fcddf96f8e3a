"""The film's tail: last ``segment.delivered`` -> ``job.completed``, beside the floor (a plain concat by copy).

Every segment of a storyboard (default: the Apfelbaum demo, 33 segments of 24 frames at 1080p) goes
through the real handlers on a real S3 server (embedded SeaweedFS) as it would arrive: encoder
(segment), QA (segment), uploader (delivery). Its frames are the tiny model's kind of picture: 128 px
wide, smooth random colour fields that drift, upscaled by the encoder. Then the tail is timed: the
encoder's film step, film QA with the job report (meanwhile the uploader delivering the film, as it does
on ``film.encoded``, and the encoder storing the crops, which the uploader delivers on
``film.deliverables_stored``), and the uploader's delivery, in the order the bus runs them
(the bus's own milliseconds are not in it). The floor is ``ffmpeg -f concat -c copy`` of
the same segment files on the same machine.

    .venv/bin/python bench/film_tail.py [--storyboard examples/apfelbaum/storyboard.yaml] [--preset veryfast]
        [--repeat 3] [--profile tail.prof] [--keep DIR]

``--repeat N`` times the tail N times on the same segments (film versions 1..N, as re-renders make
them): on a shared machine the spread says how much of a figure is the machine. ``--profile`` writes
a cProfile of the last tail run and prints the tail's parts from it (``PARTS``). ``--keep DIR`` keeps the S3
server's data in DIR: a later run with the same DIR and storyboard skips the segments already checked there and
times the tail again as the next film versions (a change to the tail measured without encoding every segment again;
a change to what segments store needs a fresh DIR).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import ffmpeg
import numpy as np
import yaml
from PIL import Image

from reelforge_encoder.deliverables import MB
from reelforge_encoder.ffmpeg import Codec, ffmpeg_exe, run
from reelforge_encoder.handler import EncoderDeps
from reelforge_encoder.handler import handle_deliverables as store_deliverables
from reelforge_encoder.handler import handle_film as encode_film
from reelforge_encoder.handler import handle_segment as encode_segment
from reelforge_encoder.kept_deliverables import KeptDeliverables
from reelforge_encoder.piece_cache import PieceCache
from reelforge_qa.film_checks import FilmThresholds
from reelforge_qa.gates import Thresholds
from reelforge_qa.handler import QaDeps
from reelforge_qa.handler import handle as check_segment
from reelforge_qa.handler import handle_film as check_film
from reelforge_shared.embedded import ACCESS_KEY, SECRET_KEY, start_s3
from reelforge_shared.events import (
    FilmChecked,
    FilmEncoded,
    FilmRequested,
    JobSubmitted,
    ModelInfo,
    SegmentChecked,
    SegmentGenerated,
)
from reelforge_shared.settings import CommonSettings
from reelforge_shared.storage import DeliveryKeys, Keys, ObjectStore
from reelforge_shared.storyboard import parse_storyboard
from reelforge_uploader.config import UploaderSettings
from reelforge_uploader.handler import handle_checked
from reelforge_uploader.handler import handle_deliverables_stored as deliver_stored
from reelforge_uploader.handler import handle_film as deliver_film
from reelforge_uploader.handler import handle_film_encoded as deliver_encoded
from reelforge_uploader.service import build as build_uploader

MODEL = ModelInfo(name="tiny", pipeline="StableDiffusionPipeline", random_weights=True)


def frames(n: int, count: int, width: int, height: int) -> list[bytes]:
    """PNG frames like the tiny model's: smooth colour fields (one seed per segment), drifting frame to frame."""
    rng = np.random.default_rng(n)
    field = cv2.resize(rng.integers(30, 220, (9, 16, 3), dtype=np.uint8), (width * 2, height), interpolation=cv2.INTER_CUBIC)
    out = []
    for i in range(count):
        picture = np.roll(field, i * 3, axis=1)[:, :width] + rng.integers(-6, 7, (height, width, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


# The tail's parts, read from the profile of a run (main thread, cumulative): (label, file, function).
PARTS = [
    ("encoder: fetch pieces and stored transitions", "reelforge_encoder/handler.py", "_film_pieces"),
    ("encoder: fetch sounds", "reelforge_encoder/handler.py", "_film_sounds"),
    ("encoder: join, crops, thumbnail, metadata", "reelforge_encoder/film_assembly.py", "make_film"),
    ("encoder: film step in all", "reelforge_encoder/handler.py", "handle_film"),
    ("QA: reads side by side", "reelforge_shared/storage.py", "read"),
    ("QA: check_film", "reelforge_qa/film_checks.py", "check_film"),
    ("QA:   describe (kept descriptors: only the embedding)", "reelforge_qa/film_checks.py", "_describe"),
    ("QA:   joins (film packets, windows decoded)", "reelforge_qa/film_checks.py", "_film_around_joins"),
    ("QA:   characters", "reelforge_qa/continuity.py", "character_checks"),
    ("QA:   locations", "reelforge_qa/continuity.py", "location_checks"),
    ("QA: job report", "reelforge_qa/job_report.py", "build_job_report"),
    ("QA: report HTML", "reelforge_qa/report_html.py", "render_html"),
    ("QA: film step in all", "reelforge_qa/handler.py", "handle_film"),
    ("delivery: film step in all", "reelforge_uploader/handler.py", "handle_film"),
]


def parts(profile: Path) -> dict[str, float]:
    """Cumulative seconds of each of PARTS in a cProfile dump (waits for threads and ffmpeg included)."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    found = {}
    for label, file, name in PARTS:
        times = [v[3] for (path, _, func), v in stats.items() if path.endswith(file) and func == name]
        if times:
            found[label] = round(max(times), 2)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storyboard", type=Path, default=Path("examples/apfelbaum/storyboard.yaml"))
    parser.add_argument("--preset", default="veryfast", help="x264 preset (the demo runs veryfast on two cores)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--repeat", type=int, default=1, help="time the tail this many times (film versions 1..N)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the last tail run here")
    parser.add_argument(
        "--no-piece-cache", action="store_true", help="the film step downloads every piece (an encoder that kept none)"
    )
    parser.add_argument("--keep", type=Path, help="keep the S3 data here; reuse the segments checked there by a run before")
    args = parser.parse_args()
    raw = yaml.safe_load(args.storyboard.read_text())
    board = parse_storyboard(raw)
    job = "bench"
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-") as tmp:
        server = start_s3(args.keep or Path(tmp, "s3"))
        try:
            settings = CommonSettings(s3_endpoint=server.url, s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY)
            store = ObjectStore.from_settings(settings)
            work, deliver = settings.work_bucket, settings.delivery_bucket
            store.ensure_bucket(work)
            store.ensure_bucket(deliver)
            store.put_json(work, Keys.storyboard(job), board.model_dump(mode="json"))
            codec = Codec(ffmpeg_exe(), crf=18, preset=args.preset)
            # One encoder encodes the segments and the film, as in `reelforge run`: its film step finds the pieces it kept.
            cache = None if args.no_piece_cache else PieceCache(limit_bytes=2048 * MB)
            # As the service: the crops kept on the encoder's disk and stored after film.encoded (handle_deliverables).
            enc = EncoderDeps(store=store, bucket=work, codec=codec, pieces=cache, kept=KeptDeliverables())
            qa = QaDeps(store=store, bucket=work, thresholds=Thresholds(), max_attempts=1, film_thresholds=FilmThresholds())
            up = build_uploader(UploaderSettings(s3_endpoint=server.url, s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY)).deps
            submitted = JobSubmitted(
                job_id=job,
                title=board.title or "",
                segment_count=len(board.segments),
                duration_s=board.duration_s,
                storyboard_key=Keys.storyboard(job),
            )
            per_segment = []
            for n, seg in enumerate(board.segments, start=1):
                if args.keep and store.exists(deliver, DeliveryKeys.segment(job, n)):
                    continue  # checked and delivered by an earlier run with --keep
                for i, png in enumerate(frames(n, seg.frames, 128, 72)):
                    store.put_bytes(work, Keys.frame(job, n, i), png, "image/png")
                generated = SegmentGenerated.follow(
                    submitted,
                    index=n,
                    segment_id=seg.id,
                    attempt=1,
                    frames_prefix=Keys.frames(job, n),
                    frame_count=seg.frames,
                    fps=seg.fps,
                    width=board.output.width,
                    height=board.output.height,
                    model=MODEL,
                )
                t0 = time.perf_counter()
                [encoded] = encode_segment(generated, enc)
                t1 = time.perf_counter()
                [checked] = check_segment(encoded, qa)
                t2 = time.perf_counter()
                if not isinstance(checked, SegmentChecked):
                    raise SystemExit(f"segment {n} was not passed on by QA: {checked!r}")
                handle_checked(checked, up)
                per_segment.append((t1 - t0, t2 - t1))
                print(f"segment {n:2d}/{len(board.segments)}: encode {t1 - t0:5.2f} s, QA {t2 - t1:5.2f} s", file=sys.stderr)
            if cache is not None and len(per_segment) < len(board.segments):
                # Segments encoded by an earlier run (--keep): kept as the encoder that encoded them would have kept them.
                warm = Path(tmp, "warm")
                warm.mkdir()
                for i, key in enumerate(store.list_keys(work, f"jobs/{job}/segments/")):
                    if ".part" in key or ".span-from-" in key:
                        piece = store.get_file(work, key, warm / f"{i}.mp4")
                        cache.keep(key, piece, store.etag(work, key) or "")
            runs = []
            first = 1  # film versions made by earlier runs with --keep are stored: the next ones are timed
            while store.exists(work, Keys.film_meta(job, first)):
                first += 1
            for version in range(first, first + args.repeat):
                # The job ledger publishes film.requested when it records the last delivery (a KV update: milliseconds).
                film_request = FilmRequested.follow(submitted, segment_count=len(board.segments), version=version)
                profile = cProfile.Profile() if args.profile and version == first + args.repeat - 1 else None
                if profile:
                    profile.enable()
                start = time.perf_counter()
                [film_encoded] = encode_film(film_request, enc)
                t_encoded, cpu_encoded = time.perf_counter(), time.process_time()
                # The uploader delivers the film on film.encoded while QA checks the film; the encoder stores the crops
                # on its own film.encoded meanwhile and the uploader delivers them on film.deliverables_stored.
                early = threading.Thread(target=deliver_encoded, args=(film_encoded, up))
                early.start()
                crops_stored: list[float] = []

                def crops(film_encoded: FilmEncoded = film_encoded, crops_stored: list[float] = crops_stored) -> None:
                    for stored in store_deliverables(film_encoded, enc):
                        deliver_stored(stored, up)
                    crops_stored.append(time.perf_counter())

                crops_thread = threading.Thread(target=crops)
                crops_thread.start()
                film_checked = next(e for e in check_film(film_encoded, qa) if isinstance(e, FilmChecked))
                t_checked, cpu_checked = time.perf_counter(), time.process_time()
                early.join()
                # On the bus, film.checked before the crops are stored is retried after REELFORGE_RETRY_DELAY_S (2 s):
                # tail_crops_late_s > 0 says it would have been (the bench waits instead).
                crops_thread.join()
                [completed] = deliver_film(film_checked, up)
                end = time.perf_counter()
                if profile:
                    profile.disable()
                    profile.dump_stats(args.profile)
                runs.append(
                    {
                        "tail_s": round(end - start, 2),
                        "tail_encoder_film_s": round(t_encoded - start, 2),
                        "tail_film_qa_s": round(t_checked - t_encoded, 2),
                        "tail_film_qa_cpu_s": round(cpu_checked - cpu_encoded, 2),  # this process, all its threads
                        "tail_delivery_s": round(end - t_checked, 2),
                        "tail_crops_late_s": round(max(0.0, crops_stored[0] - t_checked) if crops_stored else -1, 2),
                    }
                )
                print(f"tail run {version}: {runs[-1]}", file=sys.stderr)

            local = Path(tmp, "floor")
            local.mkdir()
            paths = [
                store.get_file(work, Keys.segment_video(job, n), local / f"{n:03d}.mp4")
                for n in range(1, len(board.segments) + 1)
            ]
            listing = local / "list.txt"
            listing.write_text("".join(f"file '{p}'\n" for p in paths))
            t0 = time.perf_counter()
            run(ffmpeg.input(str(listing), f="concat", safe=0).output(str(local / "floor.mp4"), c="copy"), codec.exe, "floor")
            floor = time.perf_counter() - t0
        finally:
            server.stop()
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "command": " ".join(sys.argv),
        "segments": len(board.segments),
        "size": f"{board.output.width}x{board.output.height}",
        "preset": args.preset,
        "piece_cache": cache is not None,
        "segment_encode_s_mean": round(float(np.mean([e for e, _ in per_segment])), 2) if per_segment else None,
        "segment_qa_s_mean": round(float(np.mean([q for _, q in per_segment])), 2) if per_segment else None,
        "segments_from_kept_store": len(board.segments) - len(per_segment),
        **runs[0],
        "runs": runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "floor_concat_copy_s": round(floor, 3),
        "ratio": round(runs[0]["tail_s"] / floor, 1),
        "film_qa_passed": completed.film_qa_passed,
    }
    tail = runs[0]["tail_s"]
    for n, run_ in enumerate(runs, start=1):
        print(
            f"tail {n} (last segment.delivered -> job.completed): {run_['tail_s']:.2f} s "
            f"(encoder film {run_['tail_encoder_film_s']} s, film QA {run_['tail_film_qa_s']} s "
            f"[CPU {run_['tail_film_qa_cpu_s']} s], "
            f"delivery {run_['tail_delivery_s']} s)"
        )
    if args.profile:
        figures["parts_of_last_run"] = parts(args.profile)
        print(f"parts of tail {len(runs)} (profiled, cumulative s):")
        for label, seconds in figures["parts_of_last_run"].items():
            print(f"  {label}: {seconds:.2f}")
    print(f"floor (ffmpeg -f concat -c copy of the same {len(board.segments)} segments): {floor:.3f} s")
    print(f"ratio tail / floor: {tail / floor:.1f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
