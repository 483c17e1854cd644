"""Per-frame cost of depth segmentation + walk assembly (640x480, one core). Prints numbers;
the 2 ms target is checked by reading them, not by a timed assert (shared CI machines).

    .venv/bin/pytest tests/edge/test_segment_bench.py -s -q
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge.segment import DepthSegmenter
from edge.site import learn_site
from edge.types import Frame
from edge.walks import WalkAssembler


def test_segmentation_and_walk_assembly_cost():
    gaitsim = pytest.importorskip("gaitsim")
    site = learn_site(Frame(f.index, f.timestamp, f.depth) for f in gaitsim.empty_corridor(seed=0, frames=10))
    frames = [Frame(f.index, f.timestamp, f.depth) for f in gaitsim.iter_frames(seed=8, walks=1, color=False)]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one core, as on a busy kiosk
    repeats = 5
    best = np.full(len(frames), np.inf)  # per-frame minimum over repeats: robust to other processes
    raw, walks = [], []
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
                    walks.append(walk)
    finally:
        cv2.setNumThreads(threads)
    raw = np.asarray(raw)
    print(f"\nsegmentation + walk assembly, 640x480, 1 thread, {len(frames)} frames x {repeats} "
          f"(target <= 2 ms per frame)\n"
          f"  per-frame best of {repeats}: mean {best.mean():.3f} ms, p50 {np.percentile(best, 50):.3f} ms, "
          f"p95 {np.percentile(best, 95):.3f} ms, max {best.max():.3f} ms\n"
          f"  all runs (includes other processes' load): mean {raw.mean():.3f} ms, p95 {np.percentile(raw, 95):.3f} ms")
    assert len(walks) == repeats and all(w.accepted for w in walks)
