"""Where a model's screening errors lie along the simulated severity, on held-out walks.

    python -m gaitmil.severity_bands --checkpoint CKPT --data DIR [--split NAME]
        [--threshold T] [--margin 2.5] [--json OUT]

A simulated dataset knows each walk's Cobb-like severity (truth.json; real
Scoliosis1K does not). For every TEST_SET walk this scores P(not negative)
the way `gaitmil.evaluate` does and prints, per severity band, how many walks
there are, their mean score and the share referred at the threshold (the
checkpoint's, chosen on validation, unless --threshold). It also prints the
screening AUC of all walks and of the walks at least --margin degrees from
the negative/neutral boundary: a model whose misses sit at the boundary gains
much from leaving those walks out, one that misses everywhere gains little.

Simulated walks only: a check of the recipe and the pipeline, not of screening.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.errors import GaitMILError
from gaitcontract.spec import NEGATIVE
from gaitmil.checkpoint import load_checkpoint
from gaitmil.data import Scoliosis1K, checkpoint_height
from gaitmil.evaluate import predict
from gaitmil.paper import default_eval_frames, walk_severities
from gaitmil.per_child import roc_auc

# band edges in degrees; 10 and 20 are the simulator's class boundaries (gaitsim.subject)
BAND_EDGES = (0.0, 5.0, 8.0, 10.0, 12.5, 15.0, 20.0, 30.0, 45.0)
BOUNDARY_DEG = 10.0  # negative below, neutral from here: the cut a referral makes


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    walks: int
    mean_score: float  # mean P(not negative); nan without walks
    referred: float  # share with P(not negative) >= threshold; nan without walks


def bands(
    severity: np.ndarray, scores: np.ndarray, threshold: float, edges=BAND_EDGES
) -> list[Band]:
    """Walk count, mean score and referred share per [low, high) band (the last band closed)."""
    out = []
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = i == len(edges) - 2
        inside = (severity >= low) & ((severity <= high) if last else (severity < high))
        n = int(inside.sum())
        out.append(
            Band(
                low,
                high,
                n,
                float(scores[inside].mean()) if n else float("nan"),
                float((scores[inside] >= threshold).mean()) if n else float("nan"),
            )
        )
    return out


def away_from_boundary(severity: np.ndarray, margin: float) -> np.ndarray:
    """Walks at least `margin` degrees from the negative/neutral boundary."""
    return np.abs(severity - BOUNDARY_DEG) >= margin


def render(report: dict) -> str:
    lines = [
        f"{report['walks']} walks, threshold {report['threshold']:.4f} ({report['threshold_source']})",
        "severity (deg)   walks   mean P(not negative)   referred",
    ]
    for b in report["bands"]:
        mean = "-" if b["walks"] == 0 else f"{b['mean_score']:.3f}"
        ref = "-" if b["walks"] == 0 else f"{100 * b['referred']:.1f} %"
        lines.append(
            f"{b['low']:5.1f} - {b['high']:4.1f}   {b['walks']:5d}   {mean:>20}   {ref:>8}"
        )
    lines.append(f"screening AUC, all walks: {100 * report['auc_all']:.1f} %")
    lines.append(
        f"screening AUC, walks >= {report['margin']:g} deg from {BOUNDARY_DEG:g} deg "
        f"({report['walks_away']} walks): {100 * report['auc_away']:.1f} %"
    )
    lines.append("Simulated walks only: a check of the recipe and the pipeline, not of screening.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.severity_bands",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument("--checkpoint", required=True, type=Path, help="checkpoint.pt to score")
    ap.add_argument("--data", required=True, type=Path, help="simulated dataset (has truth.json)")
    ap.add_argument("--split", default=None, help="split name or JSON (default: the checkpoint's)")
    ap.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="referral threshold (default: the checkpoint's)",
    )
    ap.add_argument(
        "--margin", type=float, default=2.5, help="degrees from the 10-degree boundary left out"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.margin < 0:
            raise GaitMILError(f"--margin {args.margin} must be >= 0 degrees")
        model, meta = load_checkpoint(args.checkpoint)
        stored = (meta.get("extra") or {}).get("referral_threshold")
        if args.threshold is not None:
            threshold, source = args.threshold, "--threshold"
        elif stored is not None:
            threshold, source = float(stored), "checkpoint"
        else:
            raise GaitMILError(f"{args.checkpoint} stores no referral threshold: pass --threshold")
        if not 0.0 <= threshold <= 1.0:
            raise GaitMILError(f"--threshold {threshold} must be within [0, 1]")
        split = args.split or meta.get("data", {}).get("split_name")
        if split is None:
            raise GaitMILError("the checkpoint does not name its split: pass --split")
        dataset = Scoliosis1K(
            args.data,
            split,
            "test",
            frames=default_eval_frames(args.data),
            train_sampling=False,
            input_height=checkpoint_height(model.config.input_height, None, args.checkpoint),
        )
        rel = [s.path.parent.relative_to(args.data).as_posix() for s in dataset.sequences]
        severity = walk_severities(args.data, rel)
        labels, probs = predict(model, dataset)
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    scores = 1.0 - probs[:, NEGATIVE]
    truth = labels != NEGATIVE
    away = away_from_boundary(severity, args.margin)
    report = {
        "walks": len(labels),
        "threshold": threshold,
        "threshold_source": source,
        "margin": args.margin,
        "bands": [asdict(b) for b in bands(severity, scores, threshold)],
        "auc_all": roc_auc(truth, scores),
        "auc_away": roc_auc(truth[away], scores[away]),
        "walks_away": int(away.sum()),
        "simulated": True,
    }
    sys.stdout.write(render(report) + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
