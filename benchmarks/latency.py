"""`python -m benchmarks.latency`: per-stage latency of one walk through each backend, interleaved.

Each iteration runs one walk (a batch of walks when the model's batch is > 1) through every backend,
rotating which backend goes first, so thermal drift, frequency scaling and other processes hit all of
them equally. Stages, in trtexec's terms:

- preprocess: walk silhouettes (uint8 [L, 64, 44], or [L, 128, 88] for a 128-px model) to the feed (even frame sampling + scaling to [0, 1])
- h2d, compute, d2h: from the runner's `last_timing` (GPU time from CUDA events for TensorRT; on CPU
  h2d and d2h are 0 and compute is the session run)
- infer_host: host wall time of `runner.infer` (input checks + copies + compute)
- postprocess: probabilities to the screening decision and the most-attended walk frames
- end_to_end: host latency from walk to decision; throughput = walks / sum of end-to-end times

Split models (issue 27): when encoder.onnx, head.onnx and model.split.json (`python -m export
split`) lie beside a measured model, the report also gives the streaming kiosk's costs on ONNX
Runtime CPU, measured by benchmarks.streaming.model_costs: the per-frame encoder cost for every
encoder precision in model.split.json and the per-walk head cost; a folder without them is
reported as such ("split": absent).

Input resolutions (issue 25): `--resolutions` also measures a random-weight model of
`--resolution-preset` at each resolution of the model contract (64x44 and 128x88) on ONNX Runtime
CPU, so the cost of the 128-px input is known per walk (benchmarks/resolutions.py).

`--pipeline` runs the whole kiosk loop instead (benchmarks/pipeline.py).
"""

from __future__ import annotations

import argparse
import gc
import shlex
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import report as rep
from benchmarks.backends import SUITES, BackendSpec, device_of, resolve_backends
from benchmarks.env import describe_machine, environment
from benchmarks.errors import BenchmarkError
from benchmarks.roofline import (
    PROBES,
    achieved_gflops,
    count_macs,
    declared_peak,
    matmul_probe,
    onnx_available,
)
from benchmarks.stats import summarize, throughput_per_s
from edge.errors import EdgeError
from edge.publishing.topic_guard import add_topic_flags
from gaitcontract import HelpFormatter, add_version_flag, spec
from gaitcontract.errors import GaitMILError

STAGES = ("preprocess", "h2d", "compute", "d2h", "infer_host", "postprocess", "end_to_end")
SCHEMA_ID = "gaitmil.bench.latency/1"
KEY_FRAMES = 5


@dataclass
class LatencySettings:
    iters: int = 100
    warmup: int = 10
    threads: int = 2
    frames: int | None = None  # T; None = the model's own
    walks: int = 8  # distinct simulated walks cycled through
    walk_frames: int = 90  # frames per simulated walk (3 s at 30 fps)
    seed: int = 0
    threshold: float = 0.5
    precision: str | None = None  # when set, every runner must report this precision
    probe: str | None = "numpy"  # matmul probe for the CPU peak; None skips it
    probe_size: int = 2048
    peak_gflops: float | None = None  # overrides measured/declared peaks
    onnx: Path | None = None  # MACs source for backends whose model is not an ONNX file
    idle_ms: float = (
        0.0  # sleep after each call, untimed (trtexec's --idleTime): lets spinning threads park
    )


@dataclass
class BackendRun:
    spec: BackendSpec
    runner: object
    samples: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    outcomes: dict[str, int] = field(default_factory=dict)


def simulated_walks(
    count: int, walk_frames: int, seed: int, height: int = spec.INPUT_HEIGHT
) -> np.ndarray:
    """uint8 [N, L, 64, 44] ([N, L, 128, 88] for `height` 128) simulated walks from gaitsim
    (imported here: only benchmarks need it)."""
    import gaitsim

    batch = gaitsim.sample_walks(count, seed=seed, frames=walk_frames, view="mixed", height=height)
    return np.asarray(batch.silhouettes)


def preprocess(
    walks: list[np.ndarray], frames: int, height: int = spec.INPUT_HEIGHT
) -> dict[str, np.ndarray]:
    """The kiosk's walk-to-feed step: T evenly spaced frames of each walk, scaled to [0, 1], stacked."""
    picked = [w[spec.even_indices(len(w), frames)] for w in walks]
    return {spec.INPUT_NAME: spec.to_model_input(np.stack(picked), height)}


def postprocess(
    outputs: dict[str, np.ndarray], walk_lengths: list[int], frames: int, threshold: float
) -> list[tuple[str, np.ndarray]]:
    """Screening decision per walk plus the walk frame indices the model attended to most."""
    from edge.screening.result import screen

    decisions = []
    for b, length in enumerate(walk_lengths):
        outcome = screen(outputs["probs"][b], threshold)
        indices = spec.even_indices(length, frames)
        top = indices[np.argsort(outputs["frame_attention"][b])[::-1][:KEY_FRAMES]]
        decisions.append((outcome, top))
    return decisions


def _runner_options(name: str, settings: LatencySettings) -> dict:
    from edge.runners.registry import runner_class

    options: dict = {"threads": settings.threads}
    if settings.frames is not None and "frames" in runner_class(name).options_allowed:
        options["frames"] = settings.frames
    return options


def _check_runner(run: BackendRun, settings: LatencySettings) -> None:
    runner = run.runner
    if settings.precision is not None and runner.precision != settings.precision:
        raise BenchmarkError(
            f"{run.spec.label} runs at {runner.precision}, but --precision {settings.precision} was asked: "
            "give the model of that precision (e.g. models/demo/model.fp16.onnx) or drop --precision"
        )
    if settings.frames is not None and runner.frames != settings.frames:
        raise BenchmarkError(
            f"{run.spec.label} was exported for T={runner.frames} frames, not --frames {settings.frames}: "
            f"re-export with `python -m export onnx --frames {settings.frames}` or drop --frames"
        )


def measure(
    specs: list[BackendSpec], settings: LatencySettings, walks: np.ndarray | None = None
) -> list[BackendRun]:
    """Activate every runner, run warm-up + timed iterations interleaved round-robin, deactivate.

    Without `walks`, each runner gets simulated walks at its own input height (64 or 128)."""
    from edge.runners.registry import create_runner

    if settings.iters < 1 or settings.warmup < 0:
        raise BenchmarkError(
            f"--iters must be >= 1 and --warmup >= 0 (got {settings.iters}, {settings.warmup})"
        )
    runs = [
        BackendRun(s, create_runner(s.name, s.model, **_runner_options(s.name, settings)))
        for s in specs
    ]
    with ExitStack() as stack:
        for run in runs:
            stack.enter_context(run.runner)
            _check_runner(run, settings)
        # after the checks: a wrong model is reported before walks are simulated
        heights = {int(run.runner.input_shape[2]) for run in runs}
        by_height = {
            h: walks
            if walks is not None
            else simulated_walks(settings.walks, settings.walk_frames, settings.seed, h)
            for h in sorted(heights)
        }
        gc.collect()
        gc.disable()  # a collection inside a timed region is noise, not the model's cost
        try:
            for it in range(settings.warmup + settings.iters):
                first = it % len(runs)
                for run in runs[first:] + runs[:first]:
                    _one_iteration(
                        run,
                        by_height[int(run.runner.input_shape[2])],
                        it,
                        record=it >= settings.warmup,
                        threshold=settings.threshold,
                    )
                    if settings.idle_ms > 0:
                        time.sleep(settings.idle_ms / 1e3)
        finally:
            gc.enable()
    return runs


def _one_iteration(
    run: BackendRun, walks: np.ndarray, it: int, record: bool, threshold: float
) -> None:
    runner = run.runner
    batch, frames, height = runner.input_shape[0], runner.input_shape[1], runner.input_shape[2]
    chosen = [walks[(it * batch + j) % len(walks)] for j in range(batch)]
    t0 = time.perf_counter()
    feed = preprocess(chosen, frames, height)
    t1 = time.perf_counter()
    outputs = runner.infer(feed)
    t2 = time.perf_counter()
    decisions = postprocess(outputs, [len(w) for w in chosen], frames, threshold)
    t3 = time.perf_counter()
    if not record:
        return
    timing = runner.last_timing
    s = run.samples
    s["preprocess"].append((t1 - t0) * 1e3)
    s["infer_host"].append((t2 - t1) * 1e3)
    s["postprocess"].append((t3 - t2) * 1e3)
    s["end_to_end"].append((t3 - t0) * 1e3)
    s["h2d"].append(timing["h2d_ms"])
    s["compute"].append(timing["compute_ms"])
    s["d2h"].append(timing["d2h_ms"])
    for outcome, _ in decisions:
        run.outcomes[outcome] = run.outcomes.get(outcome, 0) + 1


def _macs_per_walk(runs: list[BackendRun], settings: LatencySettings) -> dict[str, int | None]:
    """MACs per walk for each backend: its own ONNX, else a same-model ONNX in the run, else --onnx.

    Without onnx (the kiosk's own venv) every count is None: the report leaves the roofline
    columns out instead of losing the minutes of measurements taken before this point.
    """
    if not onnx_available():
        return {run.spec.label: None for run in runs}
    own: dict[str, int] = {}
    for run in runs:
        if run.spec.model.suffix == ".onnx":
            own[run.spec.label] = count_macs(run.spec.model).per_walk
    fallback = count_macs(settings.onnx).per_walk if settings.onnx else None
    out: dict[str, int | None] = {}
    for run in runs:
        if run.spec.label in own:
            out[run.spec.label] = own[run.spec.label]
            continue
        same = [
            o
            for o in runs
            if o.spec.label in own
            and o.runner.input_shape == run.runner.input_shape
            and o.runner.model_id == run.runner.model_id
        ]
        out[run.spec.label] = own[same[0].spec.label] if same else fallback
    return out


def _peak(
    run: BackendRun, settings: LatencySettings, probe: dict | None, env: dict
) -> tuple[float | None, str | None]:
    if settings.peak_gflops is not None:
        return settings.peak_gflops, "given with --peak-gflops"
    if device_of(run.runner) == "gpu":
        board = (env.get("jetson") or {}).get("board")
        peak = declared_peak(board, run.runner.precision)
        return peak, (f"declared for {board} at {run.runner.precision}" if peak else None)
    if probe is None:
        return None, None
    return probe[
        "best_gflops"
    ], f"FP32 matmul probe ({probe['probe']}, {probe['size']}^2, {probe['threads']} threads)"


def build_report(runs: list[BackendRun], settings: LatencySettings, command: str) -> dict:
    """The latency report dict (benchmarks/schemas/latency.schema.json)."""
    env = environment([r.spec.model for r in runs])
    probe = None
    if (
        settings.probe is not None
        and settings.peak_gflops is None
        and any(device_of(r.runner) == "cpu" for r in runs)
    ):
        probe = matmul_probe(settings.probe_size, settings.threads, repeats=5, probe=settings.probe)
    macs = _macs_per_walk(runs, settings)
    backends = []
    for run in runs:
        runner = run.runner
        stages = {stage: summarize(values) for stage, values in run.samples.items()}
        walks_done = len(run.samples["end_to_end"]) * runner.input_shape[0]
        per_walk = macs[run.spec.label]
        peak, peak_source = _peak(run, settings, probe, env)
        achieved = (
            achieved_gflops(per_walk, runner.input_shape[0], stages["compute"]["median"] / 1e3)
            if per_walk
            else None
        )
        backends.append(
            {
                "label": run.spec.label,
                "runner": runner.name,
                "model": str(run.spec.model),
                "model_id": runner.model_id,
                "model_sha256": runner.model_sha256,
                "precision": runner.precision,
                "device": device_of(runner),
                "input_shape": list(runner.input_shape),
                "stages": stages,
                "throughput_walks_per_s": throughput_per_s(
                    walks_done, sum(run.samples["end_to_end"]) / 1e3
                ),
                "outcomes": dict(run.outcomes),
                "limit": {
                    "macs_per_walk": per_walk,
                    "achieved_gflops": achieved,
                    "peak_gflops": peak,
                    "peak_source": peak_source,
                    "fraction_of_peak": achieved / peak if achieved is not None and peak else None,
                },
                "samples_ms": {
                    "end_to_end": run.samples["end_to_end"],
                    "compute": run.samples["compute"],
                },
            }
        )
    baseline = next((b for b in backends if b["runner"] == "torch"), backends[0])
    for b in backends:
        b["relative_to_baseline"] = (
            b["stages"]["end_to_end"]["median"] / baseline["stages"]["end_to_end"]["median"]
        )
    return {
        "schema": SCHEMA_ID,
        "command": command,
        "environment": env,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()}
        | {"interleaved": True},
        "probe": probe,
        "baseline": baseline["label"],
        "backends": backends,
        "notes": [
            rep.SIMULATION_NOTE.split(". ")[0] + " (timing does not depend on the walk's content)."
        ],
    }


def measure_resolutions(settings: LatencySettings, preset: str) -> dict:
    """The `resolutions` section: a random-weight `preset` model at each contract resolution,
    exported to ONNX and measured on ONNX Runtime like the backends (benchmarks.resolutions)."""
    import tempfile

    from benchmarks import resolutions

    missing = resolutions.missing_modules()
    if missing:
        return resolutions.skipped(preset, missing)
    with tempfile.TemporaryDirectory(prefix="gaitmil-resolutions-") as tmp:
        models = resolutions.export_random_models(
            Path(tmp), preset, settings.frames or spec.DEFAULT_FRAMES, settings.seed
        )
        runs = measure([BackendSpec("onnxruntime", path) for path in models.values()], settings)
    rows = [
        resolutions.row(
            height, run.runner.name, run.runner.precision, list(run.runner.input_shape), run.samples
        )
        for height, run in zip(models, runs)
    ]
    return resolutions.measured(preset, rows)


def split_costs(specs: list[BackendSpec], settings: LatencySettings) -> list[dict]:
    """Per model folder measured: the split's encoder (per frame) and head (per walk) costs on
    ONNX Runtime CPU (benchmarks.streaming.model_costs), or why there are none."""
    from benchmarks.streaming import model_costs
    from edge.screening.streaming import SPLIT_MANIFEST

    out = []
    for folder in dict.fromkeys(s.model.parent for s in specs):
        row: dict = {"folder": str(folder), "costs": None}
        if not (folder / SPLIT_MANIFEST).is_file():
            row["status"] = "absent"
            row["note"] = (
                f"no {SPLIT_MANIFEST} (encoder.onnx + head.onnx) beside the model: make them with "
                f"`python -m export split --checkpoint CKPT --out {folder}`"
            )
        else:
            try:
                # the whole-walk graphs are this report's backends already
                row["costs"] = model_costs(
                    folder, settings.iters, settings.warmup, settings.threads, whole=False
                )
                row["status"] = "measured"
            except Exception as exc:  # noqa: BLE001 - said, never losing the backends' figures
                # e.g. a split that does not match its manifest, or one ORT cannot load
                row["status"] = "unusable"
                row["note"] = f"{type(exc).__name__}: {exc}"
        out.append(row)
    return out


def split_markdown(rows: list[dict]) -> list[str]:
    from benchmarks.streaming import costs_table

    out = ["", "### Streaming split: per-frame encoder and per-walk head (issue 27)"]
    for row in rows:
        out += ["", f"`{row['folder']}`: " + (row.get("note") or "split measured.")]
        if row["costs"]:
            out += ["", *costs_table(row["costs"])]
    return out


def to_markdown(report: dict) -> str:
    """Readable summary: environment, end-to-end table, per-backend stage tables, throughput and limit."""
    s = report["settings"]
    first = report["backends"][0]
    out = [
        f"## Latency per walk: T={first['input_shape'][1]}, batch {first['input_shape'][0]}, {s['iters']} iterations "
        f"after {s['warmup']} warm-up, {s['threads']} threads, backends interleaved",
        f"`{report['command']}`",
        "",
        f"Machine: {describe_machine(report['environment'])}",
        "",
        "### End-to-end host latency (walk to decision)",
        "",
        rep.stats_table([(b["label"], b["stages"]["end_to_end"]) for b in report["backends"]]),
        "",
        "### Throughput and the limit",
        "",
        rep.markdown_table(
            [
                "backend",
                "precision",
                "walks/s",
                f"vs {report['baseline']}",
                "MMAC/walk",
                "GFLOP/s",
                "peak GFLOP/s",
                "of peak",
            ],
            [
                [
                    b["label"],
                    b["precision"],
                    rep.fmt(b["throughput_walks_per_s"], 1),
                    rep.fmt(b["relative_to_baseline"]) + "x",
                    rep.fmt(b["limit"]["macs_per_walk"] / 1e6, 1)
                    if b["limit"]["macs_per_walk"]
                    else "-",
                    rep.fmt(b["limit"]["achieved_gflops"], 1),
                    rep.fmt(b["limit"]["peak_gflops"], 1),
                    (rep.fmt(100 * b["limit"]["fraction_of_peak"], 0) + " %")
                    if b["limit"]["fraction_of_peak"]
                    else "-",
                ]
                for b in report["backends"]
            ],
        ),
    ]
    sources = sorted(
        {b["limit"]["peak_source"] for b in report["backends"] if b["limit"]["peak_source"]}
    )
    out += [
        "",
        "Peak: "
        + ("; ".join(sources) if sources else "none (pass --peak-gflops)")
        + ". GFLOP/s = 2 x MACs per walk x batch / median compute time.",
    ]
    for b in report["backends"]:
        out += [
            "",
            f"### Stages: {b['label']} ({b['precision']}, {b['device']})",
            "",
            rep.stats_table([(stage, b["stages"][stage]) for stage in STAGES]),
        ]
    if report.get("split") is not None:
        out += split_markdown(report["split"])
    if report.get("resolutions") is not None:
        from benchmarks.resolutions import markdown as resolutions_markdown

        out += resolutions_markdown(report["resolutions"])
    out += ["", "### Environment", "", rep.environment_markdown(report["environment"]), ""]
    out += [f"Note: {n}" for n in report["notes"]]
    return "\n".join(out)


class _Formatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in --help, and the description's line breaks kept."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description=__doc__.split("\n\n")[0],
        epilog="Documentation: docs/BENCHMARKS.md",
        formatter_class=_Formatter,
    )
    add_version_flag(p)
    p.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME[:MODEL]",
        help="runner to measure (onnxruntime, torch, tensorrt), repeatable; NAME:MODEL names its model",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="model for backends without NAME:MODEL, in order",
    )
    p.add_argument(
        "--suite", choices=sorted(SUITES), help="add a named set of backends over models/demo"
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        help="pick the demo model / require this precision",
    )
    p.add_argument(
        "--frames",
        type=int,
        help="frames per walk T (must match the exported model; torch takes any)",
    )
    p.add_argument("--iters", type=int, default=100, help="timed iterations per backend")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations first")
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="intra-op threads for each runner and the matmul probe",
    )
    p.add_argument(
        "--idle-ms",
        type=float,
        default=0.0,
        help="untimed sleep after each call (like trtexec --idleTime), so one backend's spinning "
        "worker threads do not slow the next",
    )
    p.add_argument("--walks", type=int, default=8, help="distinct simulated walks to cycle through")
    p.add_argument(
        "--walk-frames", type=int, default=90, help="frames per simulated walk before sampling T"
    )
    p.add_argument("--seed", type=int, default=0, help="simulator seed of the walks")
    p.add_argument(
        "--probe",
        choices=[*sorted(PROBES), "none"],
        default="numpy",
        help="matmul probe for the CPU peak",
    )
    p.add_argument("--probe-size", type=int, default=2048, help="N of the N x N matmul probe")
    p.add_argument(
        "--peak-gflops",
        type=float,
        help="use this peak instead of the probe / declared Jetson peak",
    )
    p.add_argument(
        "--onnx", type=Path, help="ONNX to count MACs from for backends whose model is not ONNX"
    )
    p.add_argument(
        "--no-split",
        action="store_true",
        help="skip the split models' encoder and head costs (measured when model.split.json "
        "is beside a model)",
    )
    p.add_argument(
        "--resolutions",
        action="store_true",
        help="also measure a random-weight model at each input resolution of the contract "
        "(64x44 and 128x88) on ONNX Runtime CPU (needs torch and onnx)",
    )
    p.add_argument(
        "--resolution-preset",
        default="tiny",
        choices=["tiny", "edge", "base"],
        help="model preset of the --resolutions models (the demo model is tiny)",
    )
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--markdown", type=Path, help="also write the Markdown report here")
    p.add_argument("--plot", type=Path, help="write a PNG of the latency distributions here")
    pipe = p.add_argument_group(
        "pipeline (--pipeline): the whole kiosk loop on the simulated camera"
    )
    pipe.add_argument(
        "--pipeline",
        action="store_true",
        help="measure the whole kiosk loop instead of the backends",
    )
    pipe.add_argument(
        "--config",
        type=Path,
        help="kiosk config TOML (default: edge's defaults); source, model, broker overridden",
    )
    pipe.add_argument(
        "--broker", help="mqtt://127.0.0.1:PORT of a local broker (default: the embedded broker)"
    )
    pipe.add_argument("--sim-walks", type=int, default=5, help="simulated walks per pipeline mode")
    add_topic_flags(
        pipe
    )  # results go out under the test prefix: a bridged broker must not store them
    pipe.add_argument(
        "--modes",
        default="fast,realtime",
        help="comma list of fast (as fast as possible) and realtime (30 fps)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = "python -m benchmarks.latency " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        if args.pipeline:
            from benchmarks.pipeline import main_pipeline

            return main_pipeline(args, command)
        specs = resolve_backends(args.backend, args.model, args.precision, args.suite)
        settings = LatencySettings(
            iters=args.iters,
            warmup=args.warmup,
            threads=args.threads,
            frames=args.frames,
            walks=args.walks,
            walk_frames=args.walk_frames,
            seed=args.seed,
            precision=args.precision,
            probe=None if args.probe == "none" else args.probe,
            probe_size=args.probe_size,
            peak_gflops=args.peak_gflops,
            onnx=args.onnx,
            idle_ms=args.idle_ms,
        )
        if not onnx_available():
            # said before measuring, so nobody waits minutes to learn it
            print(
                "note: onnx is not installed (a kiosk venv): latencies are measured, the MAC count "
                "and roofline columns are left out (pip install onnx for them)",
                file=sys.stderr,
            )
        report = build_report(measure(specs, settings), settings, command)
        if not args.no_split:
            report["split"] = split_costs(specs, settings)
        if args.resolutions:
            report["resolutions"] = measure_resolutions(settings, args.resolution_preset)
    except (BenchmarkError, EdgeError, GaitMILError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = to_markdown(report)
    rep.emit(report, text, args.markdown, args.json)
    if args.plot:
        rep.plot_distributions(
            {b["label"]: b["samples_ms"]["end_to_end"] for b in report["backends"]},
            args.plot,
            f"Latency per walk, {settings.iters} iterations, backends interleaved",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
