"""Render speed of the simulator on one core.

    python -m gaitsim.bench [--frames 300] [--walks 20]

Prints frames/s of 640x480 depth + truth mask (with sensor noise, then
without), with colour added, and the fast silhouette path (sample_walks).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import cv2

from gaitcontract import HelpFormatter, add_version_flag
from gaitsim.stream import iter_frames
from gaitsim.walks import sample_walks


def stream_fps(frames: int, color: bool, noise: bool, seed: int = 0) -> tuple[float, float]:
    """Frames/s of iter_frames over walk frames, by wall clock and by this process's CPU time.

    Both are single-threaded; the CPU-time figure is what one core delivers when
    other processes share the machine (the wall figure then drops)."""
    it = iter_frames(seed=seed, walks=None, gap_s=0.0, color=color, noise=noise)
    next(it)  # builds the renderer's caches
    wall, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in itertools.islice(it, frames))
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gaitsim.bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument("--frames", type=int, default=300, help="frames per stream measurement")
    ap.add_argument("--walks", type=int, default=20, help="walks for the sample_walks measurement")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # one core, as the target says
    results: dict[str, float] = {}
    for name, color, noise in (
        ("depth+mask", False, True),
        ("depth+mask, no noise", False, False),
        ("depth+mask+colour", True, True),
    ):
        wall, cpu = stream_fps(args.frames, color=color, noise=noise)
        results[f"{name} fps (wall)"] = wall
        results[f"{name} fps (cpu)"] = cpu
    wall, cpu = time.perf_counter(), time.process_time()
    sample_walks(args.walks, seed=0, frames=30)
    took_wall, took_cpu = time.perf_counter() - wall, time.process_time() - cpu
    results["sample_walks 30-frame walks/s (wall)"] = args.walks / took_wall
    results["sample_walks 30-frame walks/s (cpu)"] = args.walks / took_cpu
    results["sample_walks 200 walks, projected s (cpu)"] = 200 * took_cpu / args.walks
    for key, value in results.items():
        sys.stdout.write(f"{key:44s} {value:8.1f}\n")
    sys.stdout.write(json.dumps({k: round(v, 2) for k, v in results.items()}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
