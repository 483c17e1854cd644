"""Ablation: the same recipe with the old phase bags, the new ones, and temporal max / mean pooling.

    python -m gaitmil.ablation --data PATH --split 112 --out DIR [--iterations N] [--max-minutes M]
        [--variants old-bags,new-bags,max,mean] [--batch-p P --batch-k K] [--frames T] [--lr PEAK]
        [--eval-every N] [--patience N] [--threads N] [--balance-classes] [--seed S]

Each variant is trained by gaitmil.train with identical settings and seed
(validation subjects, early stopping, temperature and threshold as always)
into DIR/<variant>/, then evaluated on the split's TEST_SET at its own
validated threshold. Prints a table and writes DIR/ablation.json and
DIR/ablation.md. Where the data carry the simulator's per-frame phase, the
table adds the bag / gait-phase mutual information of the MIL variants.
Short runs (--iterations, --max-minutes per variant) give a quick, noisy
comparison; simulated walks make it a pipeline check, not a screening result.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.errors import GaitMILError

# name -> (pooling, phase features)
VARIANTS: dict[str, tuple[str, str]] = {
    "old-bags": ("mil", "appearance"),
    "new-bags": ("mil", "walk_residual"),
    "max": ("max", "walk_residual"),
    "mean": ("mean", "walk_residual"),
}


def run_variant(base, name: str, out: Path) -> dict:
    """Train and evaluate one variant; returns its table row."""
    from gaitcontract.spec import DEFAULT_FRAMES
    from gaitmil.checkpoint import load_checkpoint
    from gaitmil.data import Scoliosis1K
    from gaitmil.evaluate import evaluate
    from gaitmil.train import train

    pooling, features = VARIANTS[name]
    cfg = replace(
        base, pooling=pooling, phase_features=features, out=str(out / name), eval_at_end=False
    )
    metrics = train(cfg)
    model, meta = load_checkpoint(out / name / "checkpoint.pt")
    threshold = (meta.get("extra") or {}).get("referral_threshold", 0.5)
    test = Scoliosis1K(cfg.data, cfg.split, "test", frames=DEFAULT_FRAMES, train_sampling=False)
    report = evaluate(model, test, threshold=threshold)
    row = {
        "variant": name,
        "pooling": pooling,
        "phase_features": features,
        "iterations_run": metrics.get("iterations_run"),
        "train_seconds": metrics.get("train_seconds"),
        "val_accuracy": metrics.get("val_accuracy"),
        "test_walks": report["count"],
        "test_accuracy": report["accuracy"],
        "test_macro_f1": report["macro"]["f1"],
        "threshold": threshold,
        "screening_sensitivity": report["screening"]["sensitivity"],
        "screening_specificity": report["screening"]["specificity"],
        "ece_top_label": report["calibration"]["ece_top_label"],
        "mi_phase_bits": None,
    }
    if pooling == "mil":
        row["mi_phase_bits"] = phase_information(
            Path(cfg.data), cfg.split, out / name / "checkpoint.pt"
        )
    (out / name / "ablation_row.json").write_text(json.dumps(row, indent=2))
    return row


def phase_information(root: Path, split: str, checkpoint: Path) -> float | None:
    """I(bag; true phase) of the checkpoint's lookup on TEST_SET walks, None without phase truth."""
    from gaitcontract.errors import DatasetError
    from gaitmil.phase_info import bags_from_checkpoint, held_out_walks, report

    try:
        walks, phases, views, subjects = held_out_walks(root, split)
    except DatasetError:
        return None  # real or kiosk-recorded data: no true phase to compare with
    bags, _, _ = bags_from_checkpoint(checkpoint, walks)
    return report(bags, phases, views, subjects, 8)["mi_phase_bits"]


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def format_table(rows: list[dict]) -> str:
    lines = [
        "| variant | pooling | phase features | iterations | val acc | test acc | macro F1 "
        "| sens @ thr | spec @ thr | threshold | ECE | I(bag; phase) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mi = "-" if r["mi_phase_bits"] is None else f"{r['mi_phase_bits']:.2f} bits"
        lines.append(
            f"| {r['variant']} | {r['pooling']} | {r['phase_features']} | {r['iterations_run']} | "
            f"{_pct(r['val_accuracy'])} | {_pct(r['test_accuracy'])} | {_pct(r['test_macro_f1'])} | "
            f"{_pct(r['screening_sensitivity'])} | {_pct(r['screening_specificity'])} | "
            f"{r['threshold']:.3f} | {_pct(r['ece_top_label'])} | {mi} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from gaitmil.train import TrainConfig

    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.ablation",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument("--data", required=True, help="dataset root (5-digit subject folders)")
    ap.add_argument("--split", default="112", help="split name or JSON path")
    ap.add_argument(
        "--out", required=True, type=Path, help="folder for the variants' runs and the table"
    )
    ap.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    ap.add_argument("--preset", default="tiny", choices=["tiny", "edge", "base"], help="model size")
    ap.add_argument("--iterations", type=int, default=300, help="training iterations per variant")
    ap.add_argument("--max-minutes", type=float, default=None, help="per variant")
    ap.add_argument("--batch-p", type=int, default=16, help="subjects per batch")
    ap.add_argument("--batch-k", type=int, default=2, help="walks per subject in a batch")
    ap.add_argument("--frames", type=int, default=16, help="random frames per training clip")
    ap.add_argument("--lr", type=float, default=0.02, help="peak learning rate")
    ap.add_argument("--eval-every", type=int, default=50, help="validate every N iterations")
    ap.add_argument(
        "--patience", type=int, default=6, help="validations without improvement before stopping"
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: all cores)"
    )
    ap.add_argument(
        "--balance-classes", action="store_true", help="inverse-frequency class weights"
    )
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    args = ap.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        ap.error(f"--variants: unknown {unknown}; use some of {', '.join(VARIANTS)}")
    base = TrainConfig(
        data=args.data,
        split=args.split,
        out=str(args.out),
        preset=args.preset,
        iterations=args.iterations,
        max_minutes=args.max_minutes,
        batch_p=args.batch_p,
        batch_k=args.batch_k,
        frames=args.frames,
        lr=args.lr,
        eval_every=args.eval_every,
        patience=args.patience,
        threads=args.threads,
        balance_classes=args.balance_classes,
        seed=args.seed,
        save_every=10**9,
    )
    rows = []
    try:
        for name in names:
            rows.append(run_variant(base, name, args.out))
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    table = format_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(
        json.dumps(
            {
                "data": args.data,
                "split": args.split,
                "settings": vars(args) | {"out": str(args.out)},
                "rows": rows,
            },
            indent=2,
            default=str,
        )
    )
    note = (
        "Simulated walks: a pipeline check, not a screening result. Each variant: the same recipe and "
        "seed; threshold chosen on its own validation subjects; test = the split's TEST_SET."
    )
    (args.out / "ablation.md").write_text(table + "\n\n" + note + "\n")
    sys.stdout.write(table + "\n\n" + note + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
