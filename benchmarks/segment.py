"""Per-frame cost of depth segmentation + walk assembly on simulated walks (640x480).

    python -m benchmarks.segment [--walks 1] [--repeats 5] [--threads 1] [--json out.json]

Runs `edge.segmentation.depth.DepthSegmenter` and `edge.walks.assembler.WalkAssembler` over the frames of simulated
walks (gaitsim, depth only) `--repeats` times and prints per-frame times. For each frame the best
of the repeats is kept, which removes most of the load other processes put on a shared machine;
the mean over all runs is printed beside it. The kiosk's target is 2 ms per frame; it is reported,
not asserted (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from gaitcontract import SOFTWARE, HelpFormatter, add_version_flag

TARGET_MS = 2.0


def _stats(ms: np.ndarray) -> dict:
    return {
        "mean": float(ms.mean()),
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "max": float(ms.max()),
    }


def run(
    walks: int = 1, repeats: int = 5, threads: int = 1, seed: int = 8, gap_s: float = 1.0
) -> dict:
    """Time segmentation + walk assembly over `walks` simulated walks, `repeats` times."""
    import gaitsim
    from edge.segmentation.depth import DepthSegmenter
    from edge.segmentation.site import learn_site
    from edge.types import Frame
    from edge.walks.assembler import WalkAssembler

    if walks < 1 or repeats < 1 or threads < 1:
        raise ValueError("--walks, --repeats and --threads must be at least 1")
    site = learn_site(
        Frame(f.index, f.timestamp, f.depth) for f in gaitsim.empty_corridor(seed=0, frames=10)
    )
    frames = [
        Frame(f.index, f.timestamp, f.depth)
        for f in gaitsim.iter_frames(seed=seed, walks=walks, gap_s=gap_s, color=False)
    ]
    height, width = frames[0].depth.shape
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    best = np.full(len(frames), np.inf)
    raw: list[float] = []
    accepted = rejected = 0
    try:
        for _ in range(repeats):
            segmenter, assembler = DepthSegmenter(site), WalkAssembler()
            for i, frame in enumerate(frames):
                start = time.perf_counter()
                walk = assembler.push(segmenter.segment(frame))
                elapsed = (time.perf_counter() - start) * 1000.0
                raw.append(elapsed)
                best[i] = min(best[i], elapsed)
                if walk is not None:
                    accepted += int(walk.accepted)
                    rejected += int(not walk.accepted)
    finally:
        cv2.setNumThreads(before)
    per_frame = _stats(best)
    return {
        "benchmark": "segment",
        "software": SOFTWARE,
        "resolution": [width, height],
        "threads": threads,
        "seed": seed,
        "simulated_walks": walks,
        "frames": len(frames),
        "repeats": repeats,
        # walks the gate produced over all repeats: `simulated_walks * repeats` when all pass
        "walks_accepted": accepted,
        "walks_rejected": rejected,
        "per_frame_best_ms": per_frame,
        "all_runs_ms": _stats(np.asarray(raw)),
        "target_ms": TARGET_MS,
        "within_target": per_frame["mean"] <= TARGET_MS,
    }


def summary(report: dict) -> str:
    w, h = report["resolution"]
    best, raw = report["per_frame_best_ms"], report["all_runs_ms"]
    return (
        f"segmentation + walk assembly, {w}x{h}, {report['threads']} thread(s), "
        f"{report['frames']} frames x {report['repeats']} (target <= {report['target_ms']:g} ms per frame)\n"
        f"  per-frame best of {report['repeats']}: mean {best['mean']:.3f} ms, p50 {best['p50']:.3f} ms, "
        f"p95 {best['p95']:.3f} ms, max {best['max']:.3f} ms\n"
        f"  all runs (includes other processes' load): mean {raw['mean']:.3f} ms, p95 {raw['p95']:.3f} ms\n"
        f"  walks accepted {report['walks_accepted']} of {report['simulated_walks'] * report['repeats']} "
        f"simulated ({report['walks_rejected']} refused by the gate)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.segment",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--walks", type=int, default=1, help="simulated walks (gaitsim, depth only)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="passes over the frames; each frame keeps its best"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="OpenCV threads (1: a busy kiosk's one core)"
    )
    parser.add_argument("--seed", type=int, default=8, help="simulator seed of the walks")
    parser.add_argument(
        "--gap-s", type=float, default=1.0, help="empty corridor before and between walks, seconds"
    )
    parser.add_argument("--json", type=Path, help="also write the report here as JSON")
    add_version_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        report = run(args.walks, args.repeats, args.threads, args.seed, args.gap_s)
    except ValueError as exc:
        parser.error(str(exc))
    print(summary(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
