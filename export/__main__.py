"""python -m export {onnx,split,audit,fp16,engine,verify,bundle,keygen}: see docs/EXPORT.md.

Exit codes: 0 success; 1 a check failed (audit findings, parity below target);
2 bad input (missing or foreign checkpoint, bad option, unwritable folder,
refused engine overwrite); 3 a required library is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from export.cli_help import add_command, command_parser
from export.errors import AuditError, DependencyError, ParityError
from export.fp16 import KEEP_FP32_OPS
from gaitcontract import spec
from gaitcontract.errors import GaitMILError

UNTRAINED_NOTE = (
    "note: --preset exports a randomly initialised model: its outputs mean nothing; "
    "use it for latency and pipeline checks only"
)


def _onnx(args: argparse.Namespace) -> int:
    from export.onnx_export import ExportConfig, export_onnx

    checkpoint = args.checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        if args.preset:
            from export.random_model import make_random_checkpoint

            print(UNTRAINED_NOTE)
            checkpoint = make_random_checkpoint(
                args.preset, Path(tmp) / f"random-{args.preset}.pt", args.seed
            )
        result = export_onnx(
            ExportConfig(
                Path(checkpoint), Path(args.out), args.frames, args.batch, args.walks, args.seed
            )
        )
    print(
        f"wrote {result.onnx_path} ({result.manifest.model_id}, input {result.manifest.input_shapes})"
    )
    print(f"wrote {result.manifest_path} (weights sha256 {result.manifest.weights_sha256[:16]}...)")
    print("ONNX checker: full check passed; audit (TensorRT 10.3 ops, graph rules): PASS")
    if result.parity:
        print(result.parity.format())
    return 0


def _split(args: argparse.Namespace) -> int:
    from export.split import encoder_fp16, export_split

    result = export_split(
        args.checkpoint, args.out, args.frames, args.encoder_batch, args.walks, args.seed
    )
    print(f"wrote {result.encoder_path}, {result.head_path} and {result.manifest_path}")
    if result.parity:
        print(result.parity.format())
    if args.fp16:
        path, parity = encoder_fp16(args.out, args.walks, args.seed + 1)
        print(f"wrote {path}" + (f"; {parity.format()}" if parity else ""))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from export.audit import audit_model

    failed = 0
    reports = []
    for model in args.models:
        report = audit_model(Path(model), target=args.target)
        reports.append(
            {
                "model": report.model,
                "target": report.target,
                "ok": report.ok,
                "op_counts": report.op_counts,
                "findings": [vars(f) for f in report.findings],
            }
        )
        print(report.format())
        failed += not report.ok
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    if failed:
        raise AuditError(f"{failed} of {len(args.models)} model(s) fail the audit (findings above)")
    return 0


def _fp16(args: argparse.Namespace) -> int:
    from export.fp16 import MIN_AGREEMENT, convert_fp16
    from export.onnx_utils import load_onnx, session_batch_frames

    walks = None
    if args.walks:
        from export.onnx_utils import ort_session
        from export.walks import simulated_walks

        load_onnx(args.model)  # a clear error for a missing or corrupt file first
        session = ort_session(args.model)
        _, frames = session_batch_frames(session)
        height = session.get_inputs()[0].shape[2]  # the model's silhouette height (64 or 128)
        walks, _ = simulated_walks(args.walks, frames=frames, seed=args.seed, height=height)
    keep = tuple(args.keep_fp32)
    result = convert_fp16(args.model, args.out, keep, walks)
    print(
        f"wrote {result.path} and {result.manifest_path}; kept in FP32: ops {list(keep)} (plus the "
        f"converter's defaults) and {len(result.kept_fp32_nodes)} phase-lookup nodes"
    )
    if result.parity:
        print(result.parity.format())
        if result.parity.argmax_agreement < MIN_AGREEMENT:
            raise ParityError(
                f"FP16 argmax agreement {100 * result.parity.argmax_agreement:.2f}% is below "
                f"{100 * MIN_AGREEMENT:.1f}%: keep more ops in FP32 (--keep-fp32); an untrained "
                "model's near-uniform probabilities flip on ties, so judge a trained one"
            )
    return 0


def _engine(args: argparse.Namespace) -> int:
    from export.engine import EngineConfig, build_engine

    result = build_engine(
        EngineConfig(
            Path(args.onnx),
            Path(args.out),
            args.workspace,
            args.timing_cache or None,  # a str: a trailing "/" means a folder
            args.force,
            args.reuse_if_current,
            args.legacy_fp16,
        )
    )
    if result.decision.action == "reuse":
        print(f"{result.engine_path} is current for this machine and ONNX; not rebuilt")
    else:
        print(
            f"built {result.engine_path} ({'; '.join(result.decision.reasons)}); "
            f"manifest {result.manifest_path}; timing cache {result.timing_cache_path}"
        )
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from export.verify import verify_engine

    report = verify_engine(Path(args.engine), Path(args.onnx), args.walks, args.seed)
    print(report.format())
    if report.argmax_agreement < args.min_agreement:
        raise ParityError(
            f"engine agrees with ONNX Runtime on {100 * report.argmax_agreement:.2f}% of walks, "
            f"below {100 * args.min_agreement:.1f}%"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m export", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = add_command(
        sub, "onnx", help="checkpoint -> model.onnx + manifest, with checker, audit and parity"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a Gait-MIL checkpoint (gaitmil.checkpoint format)")
    source.add_argument(
        "--preset", help="export a randomly initialised model of this preset (benchmarks only)"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frames", type=int, default=spec.DEFAULT_FRAMES, help="T, fixed in the graph")
    p.add_argument("--batch", type=int, default=1, help="B, fixed in the graph")
    p.add_argument(
        "--walks", type=int, default=200, help="simulated walks for the parity check (0: skip)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated parity walks")
    p.set_defaults(func=_onnx)

    p = add_command(
        sub, "split", help="checkpoint -> encoder.onnx + head.onnx + model.split.json, with parity"
    )
    p.add_argument("--checkpoint", required=True, help="a Gait-MIL checkpoint (MIL pooling)")
    p.add_argument("--out", required=True, help="output folder (the whole graph's, for parity)")
    p.add_argument("--frames", type=int, default=spec.DEFAULT_FRAMES, help="T of the head")
    p.add_argument("--encoder-batch", type=int, default=4, help="frames per encoder call")
    p.add_argument(
        "--walks", type=int, default=200, help="simulated walks for the parity checks (0: skip)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated parity walks")
    p.add_argument("--fp16", action="store_true", help="also write encoder.fp16.onnx")
    p.set_defaults(func=_split)

    p = add_command(
        sub, "audit", help="check ONNX models against TensorRT 10.3's parser and the graph rules"
    )
    p.add_argument("models", nargs="+", help="ONNX models to audit")
    p.add_argument(
        "--target",
        default="auto",
        choices=("auto", "tensorrt", "cpu"),
        help="INT8 target; auto reads it from the model's metadata",
    )
    p.add_argument("--json", help="also write the findings as JSON")
    p.set_defaults(func=_audit)

    p = add_command(sub, "fp16", help="FP32 ONNX -> FP16 ONNX with FP32 inputs/outputs")
    p.add_argument("model", help="the FP32 ONNX model (model.onnx)")
    p.add_argument("--out", required=True, help="the FP16 model to write (model.fp16.onnx)")
    p.add_argument(
        "--walks", type=int, default=200, help="simulated walks for the FP32 comparison (0: skip)"
    )
    p.add_argument(
        "--keep-fp32",
        nargs="*",
        metavar="OP",
        default=list(KEEP_FP32_OPS),
        help="op types kept in FP32 besides onnxruntime's own block list",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated comparison walks")
    p.set_defaults(func=_fp16)

    p = add_command(sub, "engine", help="build a TensorRT engine on this machine")
    p.add_argument("--onnx", required=True, help="the ONNX model to build from")
    p.add_argument("--out", required=True, help="the engine file to write")
    p.add_argument("--workspace", type=int, default=1024, help="builder workspace in MiB")
    p.add_argument(
        "--timing-cache", help="timing cache file or folder (the TensorRT/GPU key is added)"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing, different engine")
    p.add_argument(
        "--reuse-if-current",
        action="store_true",
        help="exit 0 without building when the engine's manifest matches this machine and ONNX",
    )
    p.add_argument(
        "--legacy-fp16",
        action="store_true",
        help="TensorRT 10.x only: weakly typed network with BuilderFlag.FP16 (prefer the FP16 ONNX)",
    )
    p.set_defaults(func=_engine)

    p = add_command(sub, "verify", help="TensorRT engine vs ONNX Runtime on simulated walks")
    p.add_argument("--engine", required=True, help="the engine to verify")
    p.add_argument("--onnx", required=True, help="the ONNX model the engine was built from")
    p.add_argument("--walks", type=int, default=200, help="simulated walks compared")
    p.add_argument("--seed", type=int, default=2, help="seed of the simulated walks")
    p.add_argument(
        "--min-agreement", type=float, default=0.99, help="exit 1 below this argmax agreement"
    )
    p.set_defaults(func=_verify)

    p = add_command(
        sub, "bundle", help="model folder -> one signed bundle for the kiosk's model store"
    )
    p.add_argument(
        "--model-dir", required=True, help="the model folder (model.onnx, forms, card.json)"
    )
    p.add_argument("--out", required=True, help="the bundle file to write")
    p.add_argument("--sign-key", help="Ed25519 private key (PEM) from `python -m export keygen`")
    p.add_argument(
        "--signer", help="the signer's name written into the bundle (default: the key file's name)"
    )
    p.add_argument(
        "--check-walks", type=int, default=200, help="simulated held-out walks in the check set"
    )
    p.add_argument("--check-seed", type=int, default=7, help="seed of the simulated check walks")
    p.add_argument("--check-set", help="an .npz of held-out silhouettes (`silhouettes`) instead")
    p.set_defaults(func=_bundle)

    p = add_command(sub, "keygen", help="a new Ed25519 signing key pair for bundles")
    p.add_argument(
        "--out", required=True, help="the private key file (KEY.pub is written beside it)"
    )
    p.set_defaults(func=_keygen)
    return parser


def _bundle(args: argparse.Namespace) -> int:
    from export.bundle import BundleConfig, make_bundle

    out = make_bundle(
        BundleConfig(
            Path(args.model_dir),
            Path(args.out),
            Path(args.sign_key) if args.sign_key else None,
            args.signer or (Path(args.sign_key).stem if args.sign_key else None),
            args.check_walks,
            args.check_seed,
            Path(args.check_set) if args.check_set else None,
        )
    )
    signed = f"signed by {args.signer or Path(args.sign_key).stem}" if args.sign_key else "UNSIGNED"
    print(f"wrote {out} ({signed}); install it with: python -m edge model install {out}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from gaitcontract.bundle import write_keypair

    public = write_keypair(Path(args.out))
    print(
        f"wrote {args.out} (private, mode 0600: keep it off the kiosks) and {public} (for the kiosks)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (AuditError, ParityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except GaitMILError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
