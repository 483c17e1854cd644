"""`python -m benchmarks.op_profile MODEL [MODEL ...]`: where ONNX Runtime's CPU time goes, per op type.

Runs each model with ONNX Runtime's own profiler (SessionOptions.enable_profiling) on
simulated input of the model's static shape, then sums the profiler's node events by
operator type (and names the kernel/provider ORT picked). Used to explain why the INT8
encoder is or is not faster than FP32 on a given CPU (docs/BENCHMARKS.md).

    nice python -m benchmarks.op_profile models/demo/encoder.onnx models/demo/encoder.int8-cpu.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edge.runners.onnxruntime import session_options
from gaitcontract import HelpFormatter, add_version_flag


def profile(model: Path, iters: int, threads: int) -> dict[str, Any]:
    """{op_type: {"ms_per_run": float, "nodes": int}} and the total, from ORT's profiler."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feed = {}
        for value in session.get_inputs():
            shape = [int(d) for d in value.shape]
            feed[value.name] = (rng.random(shape) > 0.5).astype(np.float32)
        for _ in range(iters):
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    runs = 0
    for event in trace:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            runs += 1
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        by_op[op] += float(event["dur"]) / 1000.0
        nodes[op].add(event["name"])
    runs = max(runs, 1)
    ops = {
        op: {"ms_per_run": ms / runs, "nodes": len(nodes[op])}
        for op, ms in sorted(by_op.items(), key=lambda kv: -kv[1])
    }
    return {
        "model": str(model),
        "runs": runs,
        "threads": threads,
        "ops": ops,
        "total_ms_per_run": sum(v["ms_per_run"] for v in ops.values()),
    }


def interleaved(models: list[Path], iters: int, threads: int) -> dict[str, dict[str, float]]:
    """Wall time per run of each model, the models taking turns run by run (so a load change on
    a shared machine hits all of them alike): {model: {"median_ms", "min_ms"}}."""
    import time

    import onnxruntime as ort

    rng = np.random.default_rng(0)
    sessions, feeds = [], []
    for model in models:
        session = ort.InferenceSession(
            str(model), session_options(threads), providers=["CPUExecutionProvider"]
        )
        feed = {
            v.name: (rng.random([int(d) for d in v.shape]) > 0.5).astype(np.float32)
            for v in session.get_inputs()
        }
        for _ in range(5):
            session.run(None, feed)
        sessions.append(session)
        feeds.append(feed)
    samples: list[list[float]] = [[] for _ in models]
    for _ in range(iters):
        for i, (session, feed) in enumerate(zip(sessions, feeds)):
            t0 = time.perf_counter()
            session.run(None, feed)
            samples[i].append((time.perf_counter() - t0) * 1e3)
    return {
        str(m): {"median_ms": float(np.median(s)), "min_ms": float(np.min(s))}
        for m, s in zip(models, samples)
    }


def to_markdown(profiles: list[dict[str, Any]]) -> str:
    lines = []
    for p in profiles:
        lines += [
            f"`{p['model']}` ({p['runs']} runs, {p['threads']} thread(s)): "
            f"{p['total_ms_per_run']:.3f} ms of kernel time per run",
            "",
            "| op type (after ORT's graph optimisation) | nodes | ms per run | share |",
            "|---|---:|---:|---:|",
        ]
        for op, row in p["ops"].items():
            share = row["ms_per_run"] / p["total_ms_per_run"] if p["total_ms_per_run"] else 0.0
            lines.append(f"| {op} | {row['nodes']} | {row['ms_per_run']:.3f} | {share:.0%} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.op_profile", description=__doc__, formatter_class=HelpFormatter
    )
    add_version_flag(parser)
    parser.add_argument(
        "models", nargs="+", type=Path, help="ONNX models, the first is the yardstick"
    )
    parser.add_argument("--iters", type=int, default=50, help="timed runs per model")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--json", type=Path, help="write the profiles as JSON here")
    args = parser.parse_args(argv)
    profiles = [profile(m, args.iters, args.threads) for m in args.models]
    turns = interleaved(args.models, args.iters, args.threads)
    lines = [
        "| model | median ms per run | min ms per run | median vs the first |",
        "|---|---:|---:|---:|",
    ]
    first = turns[str(args.models[0])]["median_ms"]
    for model, row in turns.items():
        lines.append(
            f"| `{model}` | {row['median_ms']:.3f} | {row['min_ms']:.3f} | {row['median_ms'] / first:.2f}x |"
        )
    print(to_markdown(profiles))  # noqa: T201 - a command-line report
    print("Wall time, the models taking turns run by run:\n\n" + "\n".join(lines))  # noqa: T201
    if args.json:
        body = {"profiles": profiles, "interleaved": turns}
        args.json.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
