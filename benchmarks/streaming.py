"""`python -m benchmarks.streaming`: what streaming inference costs and what it saves (issue 27).

Two parts, one run:

1. Model costs on ONNX Runtime (CPU): the split encoder per frame for every encoder form
   in model.split.json (FP32, FP16, INT8 TensorRT-target, INT8 CPU-target; batches of the
   encoder's static batch, cost divided by it), the walk head per walk (FP32), and the
   whole-walk graphs beside them (model.onnx and its FP16/INT8 forms when present).
2. The kiosk loop (benchmarks.pipeline.run_mode, realtime simulated camera at 30 fps,
   embedded broker) once with model.inference = "whole_walk" and once with "streaming",
   on the same simulated walks: walk end -> result stored and published (the outbox
   write, `walk_to_outbox`) and walk end -> broker acknowledgement, side by side, with
   the frames the camera lost and the streaming worker's counters.

    nice python -m benchmarks.streaming --model models/demo/model.onnx --sim-walks 6

The model folder must hold the split (`python -m export split`, or `make models` for the
demo model); --split-from CKPT makes one in a temporary folder instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import report as rep
from benchmarks.env import describe_machine, environment
from benchmarks.stats import summarize
from edge.runners.onnxruntime import session_options
from gaitcontract import HelpFormatter, add_version_flag

SCHEMA_ID = "gaitmil.bench.streaming/1"
WHOLE_FORMS = {
    "fp32": "model.onnx",
    "fp16": "model.fp16.onnx",
    "int8": "model.int8.onnx",
    "int8-cpu": "model.int8-cpu.onnx",
}


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(
        str(path), session_options(threads), providers=["CPUExecutionProvider"]
    )


def _time(run: Any, iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def model_costs(
    folder: Path, iters: int, warmup: int, threads: int, whole: bool = True
) -> dict[str, Any]:
    """Per-frame encoder, per-walk head and (`whole`) per-walk whole-graph costs (ms) on ORT CPU."""
    from edge.screening.streaming import FEATURES, POOLED, read_split_manifest
    from export.walks import simulated_walks
    from gaitcontract import spec

    body = read_split_manifest(folder)
    frames_t = int(body["contract"]["frames"])
    batch = int(body["contract"]["encoder_batch"])
    height = int(body["contract"]["encoder_input"]["shape"][1])  # the encoder's frame height
    walks, _ = simulated_walks(2, frames=frames_t, seed=7, height=height)
    frames = np.ascontiguousarray(walks[0, :batch])
    encoders = {}
    for precision, name in sorted(body["encoders"].items()):
        session = _session(folder / name, threads)
        ms = _time(lambda s=session: s.run(None, {spec.INPUT_NAME: frames}), iters, warmup)
        per_frame = [m / batch for m in ms]
        encoders[precision] = {"file": name, "per_frame_ms": summarize(per_frame)}
    head = _session(folder / body["head"], threads)
    enc = _session(folder / body["encoders"]["fp32"], threads)
    feats, pooled = [], []
    for start in range(0, frames_t, batch):
        chunk = walks[0, start : start + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
        f, p = enc.run([FEATURES, POOLED], {spec.INPUT_NAME: np.ascontiguousarray(chunk)})
        feats.append(f)
        pooled.append(p)
    feed = {
        FEATURES: np.concatenate(feats)[:frames_t][None],
        POOLED: np.concatenate(pooled)[:frames_t][None],
    }
    head_ms = _time(lambda: head.run(None, feed), iters, warmup)
    whole_costs = {}
    walk = np.ascontiguousarray(walks[:1])
    for precision, name in WHOLE_FORMS.items():
        if whole and (folder / name).is_file():
            session = _session(folder / name, threads)
            ms = _time(lambda s=session: s.run(None, {spec.INPUT_NAME: walk}), iters, warmup)
            whole_costs[precision] = {"file": name, "per_walk_ms": summarize(ms)}
    return {
        "frames_per_walk": frames_t,
        "encoder_batch": batch,
        "threads": threads,
        "encoder": encoders,
        "head": {"file": body["head"], "per_walk_ms": summarize(head_ms)},
        "whole_walk": whole_costs,
    }


def pipeline_side_by_side(model: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """benchmarks.pipeline's realtime kiosk run, whole-walk then streaming (same walks, same broker)."""
    from benchmarks import pipeline
    from benchmarks.localbroker import local_broker
    from benchmarks.pipeline import run_mode
    from edge.screening import streaming

    rows = []
    # the streaming worker's counters at the end of its run (run_mode returns its own fields only)
    seen: list[dict[str, Any]] = []
    original = streaming.StreamingClassifier.stop

    def stop(self: Any) -> None:
        seen.append(self.health())
        original(self)

    # and each walk end's parts: waiting for the worker, encoding missing frames, the head
    parts: list[dict[str, float]] = []
    classify = streaming.StreamingClassifier.classify

    def timed_classify(self: Any, walk: Any) -> Any:
        prediction = classify(self, walk)
        st = self.worker.stats
        parts.append(
            {
                "wait": st.last_wait_ms,
                "encode_at_end": st.last_encode_at_end_ms,
                "head": st.last_head_ms,
            }
        )
        return prediction

    class ForwardingAssembler(pipeline.TimedAssembler):
        """The pipeline's timing proxy, passing the streaming hook on to the real assembler
        (a plain proxy would keep the attribute for itself and the worker would get nothing)."""

        @property
        def on_silhouette(self) -> Any:
            return self._inner.on_silhouette

        @on_silhouette.setter
        def on_silhouette(self, hook: Any) -> None:
            self._inner.on_silhouette = hook

    timed_assembler = pipeline.TimedAssembler
    pipeline.TimedAssembler = ForwardingAssembler  # type: ignore[misc]
    streaming.StreamingClassifier.stop = stop  # type: ignore[method-assign]
    streaming.StreamingClassifier.classify = timed_classify  # type: ignore[method-assign]
    with (
        local_broker(None) as broker,
        tempfile.TemporaryDirectory(prefix="gaitmil-stream-bench-") as tmp,
    ):
        for inference in ("whole_walk", "streaming"):
            config = Path(tmp) / f"{inference}.toml"
            config.write_text(f'[model]\ninference = "{inference}"\n', encoding="utf-8")
            run_args = argparse.Namespace(
                seed=args.seed,
                sim_walks=args.sim_walks,
                model_path=model,
                runner_name="onnxruntime",
                threads=args.threads,
                config=config,
            )
            row = run_mode("realtime", run_args, broker, Path(tmp) / inference)
            row["inference"] = inference
            if inference == "streaming" and seen:
                row["streaming"] = seen[-1]
                row["walk_end_parts_ms"] = (
                    {key: summarize([p[key] for p in parts]) for key in parts[0]} if parts else None
                )
            rows.append(row)
    streaming.StreamingClassifier.stop = original  # type: ignore[method-assign]
    pipeline.TimedAssembler = timed_assembler  # type: ignore[misc]
    streaming.StreamingClassifier.classify = classify  # type: ignore[method-assign]
    return rows


def costs_table(costs: dict[str, Any]) -> list[str]:
    """model_costs as Markdown lines: the setting, then one row per graph and precision
    (also benchmarks.latency's split section)."""
    lines = [
        f"ONNX Runtime CPU, {costs['threads']} thread(s); encoder batches of "
        f"{costs['encoder_batch']} frames (cost per frame = batch time / batch); "
        f"T = {costs['frames_per_walk']} frames per walk.",
        "",
        "| graph | precision | unit | median ms | p95 ms |",
        "|---|---|---|---:|---:|",
    ]
    for precision, row in costs["encoder"].items():
        s = row["per_frame_ms"]
        lines.append(f"| encoder | {precision} | frame | {s['median']:.3f} | {s['p95']:.3f} |")
    s = costs["head"]["per_walk_ms"]
    lines.append(f"| head | fp32 | walk | {s['median']:.3f} | {s['p95']:.3f} |")
    for precision, row in costs["whole_walk"].items():
        s = row["per_walk_ms"]
        lines.append(f"| whole walk | {precision} | walk | {s['median']:.3f} | {s['p95']:.3f} |")
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        "## Streaming inference (issue 27)",
        "",
        f"Machine: {describe_machine(report['environment'])}. Command: `{report['command']}`.",
        "",
        *costs_table(report["model_costs"]),
    ]
    if report.get("pipeline"):
        lines += [
            "",
            "Kiosk loop, realtime simulated camera (30 fps), embedded broker, same walks:",
            "",
            "| mode | results | frames lost | walk end -> result published p50 / p95 ms | "
            "walk end -> broker ack p50 / p95 ms | inference p50 ms | encoder frames refused |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in report["pipeline"]:
            out = row["stages_ms"].get("walk_to_outbox")
            ack = row.get("walk_end_to_ack_ms")
            inf = row["stages_ms"].get("inference")
            refused = row.get("streaming", {}).get("frames_refused", "-")
            lines.append(
                f"| {row['inference']} | {row['results']} | {row['frames_dropped']} | "
                + (f"{out['median']:.1f} / {out['p95']:.1f}" if out else "-")
                + " | "
                + (f"{ack['median']:.1f} / {ack['p95']:.1f}" if ack else "-")
                + " | "
                + (f"{inf['median']:.2f}" if inf else "-")
                + f" | {refused} |"
            )
        for row in report["pipeline"]:
            walk_parts = row.get("walk_end_parts_ms")
            if walk_parts:
                text = ", ".join(
                    f"{k} {v['median']:.2f} / {v['p95']:.2f}" for k, v in walk_parts.items()
                )
                lines += ["", f"Streaming walk end, p50 / p95 ms: {text}."]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.streaming", description=__doc__, formatter_class=HelpFormatter
    )
    add_version_flag(p)
    p.add_argument(
        "--model",
        type=Path,
        default=Path("models/demo/model.onnx"),
        help="whole-walk model; encoder.onnx, head.onnx and model.split.json beside it",
    )
    p.add_argument(
        "--split-from", type=Path, help="a checkpoint: export the split into a temporary folder"
    )
    p.add_argument("--iters", type=int, default=100, help="timed runs per graph")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    p.add_argument(
        "--sim-walks", type=int, default=6, help="walks per kiosk run (0: no kiosk runs)"
    )
    p.add_argument("--seed", type=int, default=0, help="simulator seed of the kiosk runs")
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--markdown", type=Path, help="write the report as Markdown here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = "python -m benchmarks.streaming " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    with tempfile.TemporaryDirectory(prefix="gaitmil-split-") as tmp:
        model = args.model
        if args.split_from:
            from export.split import export_split

            folder = Path(tmp)
            for name in ("model.onnx", "model.manifest.json", "card.json"):
                if (args.model.parent / name).is_file():
                    shutil.copy(args.model.parent / name, folder / name)
            frames = json.loads((folder / "model.manifest.json").read_text())["input_shapes"]
            export_split(args.split_from, folder, frames=frames["silhouettes"][1], parity_walks=0)
            model = folder / "model.onnx"
        report: dict[str, Any] = {
            "schema": SCHEMA_ID,
            "command": command,
            "environment": environment([model]),
            "model_costs": model_costs(model.parent, args.iters, args.warmup, args.threads),
            "pipeline": None,
        }
        if args.sim_walks:
            report["pipeline"] = pipeline_side_by_side(model, args)
    rep.emit(report, to_markdown(report), args.markdown, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
