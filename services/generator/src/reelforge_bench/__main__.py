"""``python -m reelforge_bench --out DIR``: the whole GPU benchmark as one command, JSON and Markdown into DIR.

Defaults are the run for one short GPU window (docs/benchmarks.md). First the video models at their
published sizes (:mod:`reelforge_bench.video`: Wan2.2-TI2V-5B, LTX-2, HunyuanVideo 1.5, then each lever
on Wan and the best combination); then, with what is left of the budget, SD 2.1's architecture with
random weights, the plain pipeline against the generator at 1024x576 and 1920x1080, 24 frames,
30 steps, CFG 7.5; then where the time goes at the first size; then each speed lever on its own
at 1920x1080, then at 1024x576, while the time budget lasts. The report is rewritten after every measurement, so a run
stopped at its time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from reelforge_bench.report import write_report
from reelforge_bench.run import SD21, BenchOptions, run_bench
from reelforge_bench.video import Budget, VideoOptions, run_video_bench
from reelforge_bench.video_arch import FAMILIES, WAN22
from reelforge_generator.config import GeneratorSettings


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reelforge_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for bench.json and bench.md")
    parser.add_argument("--sizes", default="1024x576,1920x1080")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument(
        "--baseline-frames", type=int, default=1, help="frames timed with the plain pipeline (22 s each at 1080p)"
    )
    parser.add_argument("--model", default=SD21)
    parser.add_argument("--lever-frames", type=int, default=2, help="frames per lever measurement (one batch)")
    parser.add_argument("--lever-sizes", default="1920x1080,1024x576", help="sizes of the lever table, most important first")
    parser.add_argument("--no-levers", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--budget-s", type=float, default=420.0, help="no new measurement starts after this (the whole run, both suites)"
    )
    parser.add_argument("--suite", default="video,sd", help="video, sd or both, in that order")
    parser.add_argument("--video-scale", choices=("full", "tiny"), default="full", help="tiny: the CPU path of the tests")
    parser.add_argument("--video-models", default=",".join(FAMILIES), help="video models, most important first")
    parser.add_argument("--video-timed-steps", type=int, default=2, help="denoising steps timed per model after a warm-up")
    parser.add_argument("--video-lever-model", default=WAN22.name)
    parser.add_argument("--video-lever-frames", type=int, default=41, help="frames of the lever runs (same size)")
    parser.add_argument("--video-lever-steps", type=int, default=8)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args(argv)
    options = BenchOptions(
        sizes=[_size(s) for s in args.sizes.split(",")],
        steps=args.steps,
        frames=args.frames,
        baseline_frames=args.baseline_frames,
        model=args.model,
        peak_tflops=args.peak_tflops,
        levers=not args.no_levers,
        lever_frames=args.lever_frames,
        lever_sizes=[_size(s) for s in args.lever_sizes.split(",")],
        profile=not args.no_profile,
        budget_s=args.budget_s,
    )
    command = "python -m reelforge_bench " + " ".join(sys.argv[1:] if argv is None else argv)
    suites = {s.strip() for s in args.suite.split(",")}
    unknown = suites - {"video", "sd"}
    if unknown:
        parser.error(f"--suite: unknown {', '.join(sorted(unknown))} (video, sd)")
    budget = Budget(time.monotonic() + args.budget_s)
    report: dict = {"passed": True}
    if "video" in suites:
        video = VideoOptions(
            families=tuple(m.strip() for m in args.video_models.split(",")),
            scale=args.video_scale,
            timed_steps=args.video_timed_steps,
            lever_family=args.video_lever_model,
            lever_frames=args.video_lever_frames,
            lever_steps=args.video_lever_steps,
            levers=not args.no_levers,
            peak_tflops=args.peak_tflops,
            **({"device": args.device} if args.device else {}),
        )
        if video.scale == "full" and not video.device.startswith("cuda"):
            parser.error("--video-scale full builds 5-19B-parameter models: it needs a CUDA device (use --video-scale tiny)")
        unknown_models = set(video.families) - set(FAMILIES)
        if unknown_models:
            parser.error(f"--video-models: unknown {', '.join(sorted(unknown_models))} ({', '.join(FAMILIES)})")
        report["video"] = run_video_bench(
            video, budget, lambda partial: write_report(report | {"video": partial}, args.out, command)
        )
        write_report(report, args.out, command)
    if "sd" in suites:
        options = replace(options, budget_s=max(budget.left(), 1.0)) if "video" in suites else options
        sd = run_bench(options, GeneratorSettings(), progress=lambda partial: write_report(report | partial, args.out, command))
        report |= sd
    _, md_path = write_report(report, args.out, command)
    sys.stdout.write(md_path.read_text())
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
