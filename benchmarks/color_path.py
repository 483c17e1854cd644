"""Cost of the colour path: the learned person segmenter, the whole per-frame pipeline, fusion.

    python -m benchmarks.color_path [--frames 150] [--threads 1] [--json out.json]

1. the network alone (edge.segmentation.person_model) on one frame, per call;
2. the per-frame pipeline at 640x480 and 1280x720: video decode (VideoSource on an MJPG file
   of simulated colour frames written to a temporary folder), the network, mask
   post-processing (threshold, reflections, components, camera-resolution edges) and walk
   assembly, with each stage's share; frames/s sequential (one thread does everything) and
   pipelined (the kiosk decodes on its capture thread, so the slower of the two threads bounds it);
3. RealSense: the fused segmenter (learned mask gated by depth) against depth alone, IoU with
   the simulator's truth mask on noisy frames with a reflective floor;
4. an estimate for a Jetson Orin Nano CPU from published figures (docs/PIPELINE.md).

The frames are simulated (no child's image is written anywhere). Numbers are for this
machine; the per-walk Gait-MIL inference is measured by benchmarks.latency, not here.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import gaitsim
from edge.segmentation.colour import FusedSegmenter, PersonSegmenter
from edge.segmentation.person_model import PersonModel
from edge.sources import open_source
from edge.types import Frame
from edge.walks.assembler import WalkAssembler
from gaitcontract import HelpFormatter, add_version_flag

GFLOP_PER_CALL = 0.1184  # 59.2 M multiply-adds of the converted model's Conv/ConvTranspose nodes
# Published: Jetson Orin Nano CPU 6x Arm Cortex-A78AE at 1.5 GHz (1.7 GHz in the "Super" mode),
# NVIDIA's developer kit datasheet; an A78 core issues two 128-bit NEON FMA per cycle = 16 FP32 FLOP.
ORIN_NANO_CORE_GFLOPS = 1.5 * 16
# This benchmark's assumption for the host peak: AVX-512 (two FMA units) = 64 FP32 FLOP/cycle.
HOST_FLOP_PER_CYCLE = 64


class _TimedModel:
    """PersonModel wrapper that records the time of each probability() call."""

    def __init__(self, model: PersonModel) -> None:
        self.model = model
        self.times: list[float] = []

    def probability(self, bgr: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.model.probability(bgr)
        self.times.append((time.perf_counter() - t0) * 1e3)
        return out


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms, np.float64)
    return {
        "mean_ms": round(float(a.mean()), 3),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "n": int(a.size),
    }


def sim_colour(frames: int, seed: int = 10) -> list:
    out = []
    for f in gaitsim.iter_frames(seed=seed, walks=None, view="side", gap_s=0.3, reflect=0.5):
        out.append(f)
        if len(out) >= frames:
            return out
    return out


def network_cost(model: PersonModel, frames: list, size: tuple[int, int], repeats: int) -> dict:
    image = cv2.resize(frames[len(frames) // 2].color, size)
    for _ in range(10):
        model.probability(image)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.probability(image)
        times.append((time.perf_counter() - t0) * 1e3)
    result = _stats(times)
    result["gflops_achieved"] = round(GFLOP_PER_CALL / (result["p50_ms"] / 1e3), 2)
    return result


def pipeline(model: PersonModel, frames: list, size: tuple[int, int], folder: Path) -> dict:
    path = folder / f"walk_{size[0]}x{size[1]}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    for f in frames:
        writer.write(cv2.resize(f.color, size, interpolation=cv2.INTER_LINEAR))
    writer.release()
    timed = _TimedModel(model)
    seg = PersonSegmenter(timed)  # type: ignore[arg-type] - duck-typed model
    assembler = WalkAssembler()
    stage = {"decode": [], "network": [], "mask": [], "walk": []}
    with open_source(f"video://{path}") as source:
        it = iter(source)
        while True:
            t0 = time.perf_counter()
            frame = next(it, None)
            t1 = time.perf_counter()
            if frame is None:
                break
            mask = seg.segment(frame)
            t2 = time.perf_counter()
            assembler.push(mask)
            t3 = time.perf_counter()
            stage["decode"].append((t1 - t0) * 1e3)
            stage["network"].append(timed.times[-1])
            stage["mask"].append((t2 - t1) * 1e3 - timed.times[-1])
            stage["walk"].append((t3 - t2) * 1e3)
    mean = {k: float(np.mean(v)) for k, v in stage.items()}
    total = sum(mean.values())
    worker = total - mean["decode"]
    return {
        "size": f"{size[0]}x{size[1]}",
        "frames": len(stage["walk"]),
        "stages_ms": {k: round(v, 3) for k, v in mean.items()},
        "share": {k: round(v / total, 3) for k, v in mean.items()},
        "fps_sequential": round(1e3 / total, 1),
        "fps_pipelined": round(1e3 / max(mean["decode"], worker), 1),
    }


def fusion_vs_depth(model: PersonModel, seeds: tuple[int, ...], every: int) -> dict:
    from edge.segmentation.depth import DepthSegmenter
    from edge.segmentation.site import learn_site

    out: dict[str, dict] = {}
    for view in ("toward", "side"):
        scores: dict[str, list[float]] = {"depth": [], "fused": []}
        for seed in seeds:
            empty = gaitsim.empty_corridor(seed=seed, frames=20, view=view)
            site = learn_site(Frame(f.index, float(f.timestamp), depth=f.depth) for f in empty)
            segs = {"depth": DepthSegmenter(site), "fused": FusedSegmenter(site, model)}
            frames = gaitsim.iter_frames(seed=seed, walks=1, view=view, gap_s=0.0, reflect=0.5)
            for i, f in enumerate(frames):
                if i % every or f.mask.sum() < 1500:
                    continue
                frame = Frame(f.index, float(f.timestamp), depth=f.depth, color=f.color)
                for name, seg in segs.items():
                    m = seg.segment(frame).mask.astype(bool)
                    scores[name].append(float((m & f.mask).sum() / max((m | f.mask).sum(), 1)))
        out[view] = {
            name: {
                "iou_mean": round(float(np.mean(v)), 3),
                "iou_median": round(float(np.median(v)), 3),
                "frames": len(v),
            }
            for name, v in scores.items()
        }
    return out


def orin_estimate(network: dict, pipe: dict, host_ghz: float) -> dict:
    """Network time on one Orin Nano CPU core at this benchmark's achieved share of peak."""
    host_peak = host_ghz * HOST_FLOP_PER_CYCLE
    efficiency = network["gflops_achieved"] / host_peak
    net_ms = GFLOP_PER_CALL / (ORIN_NANO_CORE_GFLOPS * efficiency) * 1e3
    return {
        "host_peak_gflops_assumed": round(host_peak, 1),
        "efficiency_here": round(efficiency, 3),
        "orin_nano_network_ms_one_core": round(net_ms, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.color_path",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(parser)
    parser.add_argument("--frames", type=int, default=150, help="simulated colour frames")
    parser.add_argument("--threads", type=int, default=1, help="threads of the person network")
    parser.add_argument(
        "--repeats", type=int, default=100, help="timed runs of the network per size"
    )
    parser.add_argument(
        "--host-ghz", type=float, default=None, help="host core clock (default: /proc/cpuinfo)"
    )
    parser.add_argument(
        "--fusion-seeds",
        type=int,
        default=2,
        help="simulated walks compared, fusion against depth only",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    model = PersonModel(threads=args.threads)
    frames = sim_colour(args.frames)
    report: dict = {
        "threads": args.threads,
        "note": "simulated colour frames; see docs/PIPELINE.md for the Jetson estimate",
    }
    report["network"] = {
        f"{w}x{h}": network_cost(model, frames, (w, h), args.repeats)
        for w, h in ((640, 480), (1280, 720))
    }
    with tempfile.TemporaryDirectory() as tmp:
        report["pipeline"] = [
            pipeline(model, frames, size, Path(tmp)) for size in ((640, 480), (1280, 720))
        ]
    report["fusion_vs_depth"] = fusion_vs_depth(
        model, tuple(range(10, 10 + args.fusion_seeds)), every=3
    )
    ghz = args.host_ghz or _host_ghz()
    if ghz:
        report["orin_nano_estimate"] = orin_estimate(
            report["network"]["640x480"], report["pipeline"][0], ghz
        )
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def _host_ghz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000.0
    except OSError:
        return None
    return None


if __name__ == "__main__":
    raise SystemExit(main())
