"""`python -m benchmarks.accuracy`: the precision variants of one model on held-out walks.

FP32, FP16 and both INT8 ONNX models (TensorRT's symmetric and the CPU's unsigned-activation form)
run in ONNX Runtime on the same held-out walks; the metrics, the agreement with FP32 and the targets
come from the calibration report's code (calibration/report.py), so `calibration report` and this
benchmark can never disagree on what a figure means.

Held-out walks are simulated by default (gaitsim.sample_walks with seed 101: calibration sets use seed
0 and the training set is written by gaitsim.dataset, so none of these walks were seen in training or
calibration), or a saved set from `python -m calibration collect` (--data). Models trained on
simulated walks give pipeline checks here, not screening performance.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from benchmarks import report as rep
from benchmarks.env import describe_machine, environment
from benchmarks.errors import BenchmarkError
from gaitcontract import HelpFormatter, add_version_flag, spec

SCHEMA_ID = "gaitmil.bench.accuracy/1"
HELD_OUT_SEED = 101
DEMO_DIR = Path("models/demo")
DEMO_VARIANTS = ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.int8-cpu.onnx")
DEFAULT_THRESHOLD = 0.5


def simulated_held_out(
    count: int,
    frames: int,
    seed: int = HELD_OUT_SEED,
    view: str = "mixed",
    height: int = spec.INPUT_HEIGHT,
):
    """A labelled calibration.dataset.CalibrationSet of simulated walks (equal classes), at the
    model's input `height` (64x44 or 128x88)."""
    import gaitsim
    from calibration.dataset import CalibrationSet

    # the walks do not depend on the number of workers (gaitsim seeds each walk on its own)
    workers = max(
        1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    )
    batch = gaitsim.sample_walks(
        count, seed=seed, frames=frames, view=view, ratio=(1, 1, 1), workers=workers, height=height
    )
    strata = [f"{spec.CLASSES[int(label)]}/{v}" for label, v in zip(batch.labels, batch.views)]
    return CalibrationSet(
        batch.silhouettes,
        batch.labels.astype("int64"),
        strata,
        source={
            "kind": "simulated",
            "generator": "gaitsim.sample_walks",
            "seed": seed,
            "view": view,
            "ratio": "1:1:1",
        },
    )


def model_walk_shape(path: Path) -> tuple[int, int, int]:
    """(T, H, W) of an ONNX model's input (static): H x W is 64x44 or 128x88."""
    import onnxruntime as ort

    shape = (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    )
    if (
        len(shape) != 4
        or not all(isinstance(d, int) for d in shape[1:])
        or not spec.is_input_geometry(shape[2], shape[3])
    ):
        raise BenchmarkError(
            f"{path}: input shape {shape} is not a static {spec.input_geometries()}; re-export it"
        )
    return int(shape[1]), int(shape[2]), int(shape[3])


def card_threshold(fp32: Path) -> tuple[float, str]:
    """The referral threshold of the model card beside the FP32 model, else the default 0.5."""
    card = fp32.parent / "card.json"
    if card.is_file():
        value = json.loads(card.read_text()).get("referral_threshold")
        if isinstance(value, (int, float)) and 0 < value < 1:
            return float(value), f"model card {card}"
    return DEFAULT_THRESHOLD, "default"


def choose_models(models: list[Path]) -> tuple[list[Path], list[str]]:
    """The models to compare (FP32 first) and notes about demo variants that are not there."""
    if models:
        missing = [str(m) for m in models if not m.is_file()]
        if missing:
            raise BenchmarkError(
                f"model file(s) {missing} do not exist; build them with `make models`"
            )
        return models, []
    present = [DEMO_DIR / name for name in DEMO_VARIANTS if (DEMO_DIR / name).is_file()]
    if DEMO_DIR / DEMO_VARIANTS[0] not in present:
        raise BenchmarkError(
            f"{DEMO_DIR / DEMO_VARIANTS[0]} does not exist: build the demo models with "
            "`make models`, or pass --models FP32.onnx [OTHER.onnx ...]"
        )
    notes = [
        f"{DEMO_DIR / n} not found: not compared"
        for n in DEMO_VARIANTS
        if DEMO_DIR / n not in present
    ]
    return present, notes


def run_accuracy(models: list[Path], held_out, threshold: float) -> dict:
    """calibration.report.evaluate over the models (the first must be FP32)."""
    from calibration.errors import CalibrationError
    from calibration.report import ModelEntry, evaluate, name_model

    entries = []
    for path in models:
        name, precision = name_model(path)
        if any(e.name == name for e in entries):
            raise BenchmarkError(
                f"two models are both {name} ({path}): compare one model per precision/target"
            )
        entries.append(ModelEntry(name, path, precision))
    if entries[0].precision != "fp32":
        raise BenchmarkError(
            f"the first model must be the FP32 reference, {models[0]} is {entries[0].precision}"
        )
    try:
        return evaluate(entries, held_out, threshold)
    except CalibrationError as exc:
        raise BenchmarkError(str(exc)) from exc


def to_markdown(report: dict) -> str:
    from calibration.report import markdown

    s = report["settings"]
    lines = [
        f"## Accuracy of the precision variants: {report['result']['walks']} held-out walks, "
        f"threshold {s['threshold']:g} ({s['threshold_source']})",
        f"`{report['command']}`",
        "",
        f"Machine: {describe_machine(report['environment'])}",
        "",
        markdown(report["result"]).rstrip(),
        "",
    ]
    lines += [f"Note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.accuracy",
        description=__doc__.split("\n\n")[0],
        epilog="Documentation: docs/BENCHMARKS.md",
        formatter_class=HelpFormatter,
    )
    add_version_flag(p)
    p.add_argument(
        "--models",
        nargs="+",
        type=Path,
        default=[],
        help="FP32 model first, then FP16/INT8 variants (default: the demo models that exist)",
    )
    p.add_argument(
        "--walks", type=int, default=300, help="simulated held-out walks (equal classes)"
    )
    p.add_argument(
        "--seed", type=int, default=HELD_OUT_SEED, help="simulator seed of the held-out walks"
    )
    p.add_argument(
        "--view",
        default="mixed",
        choices=["toward", "away", "side", "mixed"],
        help="walking direction of the simulated walks",
    )
    p.add_argument(
        "--data", type=Path, help="a labelled set saved by `python -m calibration collect` instead"
    )
    p.add_argument(
        "--threshold", type=float, help="referral threshold (default: the model card's, else 0.5)"
    )
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here")
    p.add_argument("--plot", type=Path, help="write a PNG here")
    return p


def main(argv: list[str] | None = None) -> int:
    from calibration.errors import CalibrationError
    from edge.errors import EdgeError
    from gaitcontract.errors import GaitMILError

    args = parser().parse_args(argv)
    command = "python -m benchmarks.accuracy " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        models, notes = choose_models(list(args.models))
        frames, height, width = model_walk_shape(models[0])
        if args.data is not None:
            from calibration.dataset import load_set

            held_out = load_set(args.data, expected_shape=(frames, height, width))
        else:
            if args.walks < 3:
                raise BenchmarkError(f"--walks {args.walks}: use at least 3 (one per class)")
            held_out = simulated_held_out(args.walks, frames, args.seed, args.view, height)
        threshold, source = (
            (args.threshold, "--threshold")
            if args.threshold is not None
            else card_threshold(models[0])
        )
        result = run_accuracy(models, held_out, threshold)
    except (BenchmarkError, CalibrationError, EdgeError, GaitMILError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {
        "schema": SCHEMA_ID,
        "command": command,
        "environment": environment(models),
        "settings": {
            "models": [str(m) for m in models],
            "frames": frames,
            "threshold": threshold,
            "threshold_source": source,
            "data": str(args.data) if args.data else None,
            "walks": held_out.count,
            "seed": None if args.data else args.seed,
        },
        "result": result,
        "notes": notes + [rep.SIMULATION_NOTE] if args.data is None else notes,
    }
    text = to_markdown(report)
    rep.emit(report, text, args.markdown, args.json)
    if args.plot:
        from calibration.report import plot

        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
