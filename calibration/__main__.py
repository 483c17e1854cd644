"""python -m calibration {collect,quantize,report,latency,split-encoders}: see docs/CALIBRATION.md.

Exit codes: 0 success; 1 a model missed its precision target (report);
2 bad input (empty or mismatched set, NaN, bad option, unwritable output);
3 a required library is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from calibration.quantize import METHODS, TARGETS
from export.cli_help import add_command, command_parser
from export.errors import DependencyError
from gaitcontract import spec
from gaitcontract.errors import GaitMILError


def _collect(args: argparse.Namespace) -> int:
    from calibration.collect import collect_dataset, collect_sim, collect_walks
    from calibration.dataset import save_set

    if args.sim:
        calib = collect_sim(args.sim, args.count, args.frames, args.input_height)
    elif args.dataset:
        calib = collect_dataset(
            args.dataset, args.split, args.count, args.frames, args.seed, args.input_height
        )
    else:
        calib = collect_walks(args.walks, args.count, args.frames, args.seed, args.input_height)
    for warning in calib.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    npz, described = save_set(calib, args.out)
    info = calib.describe()
    print(
        f"wrote {npz} ({info['count']} walks x {calib.frames} frames, classes {info['classes']}, "
        f"strata {len(info['strata'])}) and {described}; content hash {info['hash'][:16]}..."
    )
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from calibration.quantize import QuantizeConfig, quantize

    result = quantize(
        QuantizeConfig(
            Path(args.model),
            Path(args.data),
            args.target,
            Path(args.out) if args.out else None,
            args.method,
            list(args.exclude or []),
            args.quantize_head,
            args.max_walks,
            bias_correction=not args.no_bias_correction,
        )
    )
    manifest = result.manifest
    print(
        f"wrote {result.path} ({args.target}: activations {manifest.extra['activation_type']}, "
        f"weights {manifest.extra['weight_type']} per channel; {len(result.float_nodes)} nodes kept in float) "
        f"and {result.manifest_path}; calibration {manifest.calibration['method']} on "
        f"{manifest.calibration['walks']} walks, set hash {manifest.calibration['hash'][:16]}..."
    )
    if result.bias_correction:
        c = result.bias_correction
        print(
            f"bias correction: {c.node} running mean moved by the embedding shift measured on {c.walks} walks "
            f"(mean {c.mean_abs_shift:.3f}, max {c.max_abs_shift:.3f} running std)"
        )
    print(f"audit ({args.target} rules): PASS")
    return 0


def _report(args: argparse.Namespace) -> int:
    from calibration.report import build_report, markdown, write_report

    report = build_report(
        Path(args.fp32),
        Path(args.fp16) if args.fp16 else None,
        [Path(p) for p in args.int8 or []],
        Path(args.data),
        args.threshold,
        args.sensitivity,
        Path(args.calib) if args.calib else None,
        args.sensitivity_target,
    )
    print(markdown(report))
    for path in write_report(
        report,
        Path(args.json) if args.json else None,
        Path(args.md) if args.md else None,
        Path(args.png) if args.png else None,
    ):
        print(f"wrote {path}")
    missed = [name for name, row in report["models"].items() if row["meets_target"] is False]
    if missed:
        print(
            f"error: {', '.join(missed)} missed the precision target (see the table)",
            file=sys.stderr,
        )
        return 1
    unsure = [
        name
        for name, row in report["models"].items()
        if row["meets_target"] is None and name != "fp32"
    ]
    if unsure:
        print(
            f"warning: {', '.join(unsure)}: {report['walks']} walks are too few to tell whether the "
            "precision target is met; report on more walks (600 puts one walk at 0.17 %)",
            file=sys.stderr,
        )
    return 0


def _latency(args: argparse.Namespace) -> int:
    from calibration.latency import format_table, measure_interleaved

    results = measure_interleaved(args.models, threads=args.threads, runs=args.runs)
    print(format_table(results, results[0]))
    if args.json:
        Path(args.json).write_text(
            json.dumps([r.to_dict() for r in results], indent=2) + "\n", encoding="utf-8"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m calibration", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    targets = sorted(TARGETS)

    p = add_command(sub, "collect", help="make a stratified, content-hashed calibration set")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--sim", metavar="SPEC", help="simulated walks: 'default' or seed=S,view=V,ratio=N:N:N"
    )
    source.add_argument(
        "--dataset", metavar="PATH", help="a Scoliosis1K-layout dataset (training subset)"
    )
    source.add_argument(
        "--walks", metavar="DIR", help="walks recorded on site by a kiosk (record_walks on)"
    )
    p.add_argument("--split", default="118", help="split name or JSON for --dataset")
    p.add_argument("--count", type=int, required=True, help="walks in the set")
    p.add_argument("--frames", type=int, default=spec.DEFAULT_FRAMES, help="T of each walk")
    spec.add_input_height_argument(
        p,
        spec.INPUT_HEIGHT,
        "the model's input height: 64 (64x44) or 128 (128x88); walks of another height "
        "are refused, never resized",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified selection")
    p.add_argument("--out", required=True, help="calib.npz (its description goes to calib.json)")
    p.set_defaults(func=_collect)

    p = add_command(sub, "quantize", help="explicit Q/DQ INT8 for the tensorrt or cpu target")
    p.add_argument("model", help="the FP32 ONNX model (model.onnx)")
    p.add_argument("--data", required=True, help="calibration set (calib.npz)")
    p.add_argument("--target", required=True, choices=targets, help="the runtime the model is for")
    p.add_argument(
        "--out",
        help="default: model.int8.onnx (tensorrt) / model.int8-cpu.onnx (cpu) beside MODEL",
    )
    p.add_argument(
        "--method", default="minmax", choices=sorted(METHODS), help="activation range calibration"
    )
    p.add_argument("--exclude", nargs="*", metavar="PATTERN", help="node-name globs kept in float")
    p.add_argument(
        "--quantize-head",
        action="store_true",
        help="also quantize attention scoring, softmaxes and the head",
    )
    p.add_argument("--max-walks", type=int, help="use at most this many calibration walks")
    p.add_argument(
        "--no-bias-correction",
        action="store_true",
        help="leave the head BatchNorm as exported instead of folding in the embedding shift "
        "that quantization causes (measured on the calibration walks)",
    )
    p.set_defaults(func=_quantize)

    p = add_command(
        sub, "report", help="accuracy and agreement of FP32 / FP16 / INT8 on held-out walks"
    )
    p.add_argument("--fp32", required=True, help="the FP32 model: the reference")
    p.add_argument("--fp16", help="the FP16 model")
    p.add_argument("--int8", nargs="*", help="INT8 models (each named by its target in the report)")
    p.add_argument(
        "--data", required=True, help="held-out set (calibration-set format, with labels)"
    )
    p.add_argument(
        "--threshold", type=float, default=0.5, help="referral threshold for the screening pair"
    )
    p.add_argument(
        "--sensitivity", action="store_true", help="quantize one block at a time and rank them"
    )
    p.add_argument("--calib", help="calibration set for --sensitivity (default: the held-out set)")
    p.add_argument(
        "--sensitivity-target",
        choices=targets,
        default="cpu",
        help="INT8 target whose Q/DQ form --sensitivity applies block by block",
    )
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--md", help="write the report as Markdown")
    p.add_argument("--png", help="write the report figure (PNG)")
    p.set_defaults(func=_report)

    p = add_command(
        sub,
        "latency",
        help="per-walk latency on ONNX Runtime CPU; the first model is the baseline",
    )
    p.add_argument("models", nargs="+", help="ONNX models to time")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    p.add_argument("--runs", type=int, default=20, help="timed runs per model (after warm-up)")
    p.add_argument("--json", help="also write the timings as JSON")
    p.set_defaults(func=_latency)

    p = add_command(
        sub,
        "split-encoders",
        help="both INT8 forms of a split model's encoder (export split), recorded in model.split.json",
    )
    p.add_argument("--out", required=True, help="the folder of encoder.onnx and model.split.json")
    p.add_argument(
        "--sim", required=True, help="calibration walks: collect's sim spec (seed=...,view=...)"
    )
    p.add_argument("--count", type=int, default=300, help="calibration walks (every frame is used)")
    p.add_argument("--frames", type=int, default=spec.DEFAULT_FRAMES, help="frames per walk")
    p.add_argument(
        "--walks", type=int, default=200, help="simulated walks for the parity (0: skip)"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the parity walks")
    p.set_defaults(func=_split_encoders)
    return parser


def _split_encoders(args: argparse.Namespace) -> int:
    from calibration.collect import collect_sim
    from calibration.demo_artifacts import CPU_FLOAT_BLOCKS, TENSORRT_FLOAT_BLOCKS
    from calibration.split import encoder_int8
    from export.split import read_split_manifest

    # calibration frames at the encoder's own height (64x44 or 128x88)
    contract = read_split_manifest(args.out)["contract"]
    height = int(contract["encoder_input"]["shape"][1])
    calib = collect_sim(args.sim, args.count, args.frames, height)
    for target, blocks in (("tensorrt", TENSORRT_FLOAT_BLOCKS), ("cpu", CPU_FLOAT_BLOCKS)):
        path, parity = encoder_int8(
            args.out, calib, target, f"sim:{args.sim}", list(blocks), args.walks, args.seed
        )
        print(f"wrote {path}" + (f"; {parity.format()}" if parity else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger().setLevel(
        logging.ERROR
    )  # onnxruntime's quantizer logs advice on the root logger
    try:
        return args.func(args)
    except DependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except GaitMILError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
