"""Write a simulated training set in the Scoliosis1K / OpenGait layout.

    python -m gaitsim.dataset --walks 1500 --seed 0 --out /tmp/sim1500 --ratio 1:1:2 --view mixed --workers 2

Layout: DIR/<5-digit subject>/<class>/<seq>_<angle>/<seq>_<angle>.pkl, each a
pickled uint8 [T, 64, 64] from gaitcontract.silhouette.normalize; the split file
DIR/Scoliosis1K_<name>.json ({"TRAIN_SET": [...], "TEST_SET": [...]}, subject
ids as strings, disjoint); DIR/truth.json with per-sequence truth (label, severity, curve type,
view and the gait phase of every frame). View
folders: <seq> numbers the subject's walks (000, 001, ...), <angle> is the
walking direction like Scoliosis1K's 000_180: 180 toward the camera, 000 away,
090 side. Simulated walks make a pipeline check, not a screening tool.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.spec import CLASSES
from gaitsim.errors import SimConfigError
from gaitsim.subject import DEFAULT_THRESHOLDS, check_thresholds, sample_subject
from gaitsim.walk import check_view
from gaitsim.walks import labels_for_ratio, walk_sequence

VIEW_ANGLE = {"toward": "180", "away": "000", "side": "090"}
NOTE = (
    "Simulated walks from gaitsim: a pipeline check, not a screening tool. "
    "The severity-to-label mapping is a modelling choice of the simulator."
)


def parse_ratio(text: str) -> tuple[int, int, int]:
    """'1:1:2' (positive:neutral:negative, as Scoliosis1K split names) -> (negative, neutral, positive)."""
    try:
        pos, neu, neg = (int(x) for x in text.split(":"))
    except ValueError as err:
        raise SimConfigError(
            f"--ratio {text!r} must look like 1:1:2 (positive:neutral:negative)"
        ) from err
    if min(pos, neu, neg) < 0 or pos + neu + neg == 0:
        raise SimConfigError(f"--ratio {text!r} needs non-negative parts, not all 0")
    return neg, neu, pos


def plan_sequences(walks: int, seed: int, ratio: tuple[int, int, int], view: str) -> list[dict]:
    """Subjects with 1-3 walks each (Scoliosis1K has ~1.4), class by ratio, views alternating when mixed."""
    rng = np.random.default_rng([seed, 0xD5])
    counts: list[int] = []
    while sum(counts) < walks:
        counts.append(min(int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2])), walks - sum(counts)))
    labels = labels_for_ratio(len(counts), ratio, rng)
    plan = []
    for subj, (n, label) in enumerate(zip(counts, labels)):
        first = int(rng.integers(2))
        for seq in range(n):
            chosen = ("toward", "away")[(first + seq) % 2] if view == "mixed" else view
            plan.append({"subject": subj, "seq": seq, "label": int(label), "view": chosen})
    return plan


def _write_sequence(args: tuple) -> tuple[str, dict]:
    out, seed, item, frames, thresholds = args
    subj_rng = np.random.default_rng([seed, item["subject"], 0x5B])
    sid = f"{item['subject']:05d}"
    subject = sample_subject(subj_rng, item["label"], subject_id=sid, thresholds=thresholds)
    rng = np.random.default_rng([seed, item["subject"], item["seq"], 0xDA7A])
    sil, phases = walk_sequence(subject, item["view"], rng, frames=None, max_frames=frames)
    folder = f"{item['seq']:03d}_{VIEW_ANGLE[item['view']]}"
    cls = CLASSES[item["label"]]
    rel = f"{sid}/{cls}/{folder}"
    target = Path(out) / rel
    target.mkdir(parents=True, exist_ok=True)
    with open(target / f"{folder}.pkl", "wb") as fh:
        pickle.dump(sil, fh)
    p = subject.posture
    return rel, {
        "subject_id": sid,
        "class": cls,
        "label": item["label"],
        "view": item["view"],
        "frames": int(len(sil)),
        "severity": p.severity,
        "curve_type": p.curve_type,
        "side": "right" if p.side > 0 else "left",
        "subject": subject.to_dict(),
        # true gait phase (stride fraction in [0, 1)) of each stored frame, in order
        "phase": [round(float(x), 4) for x in phases],
    }


def split_subjects(
    plan: list[dict], test_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Subject-disjoint train/test lists, stratified by class."""
    if not 0.0 < test_fraction < 1.0:
        raise SimConfigError(f"--test-fraction {test_fraction} must be between 0 and 1")
    rng = np.random.default_rng([seed, 0x5917])
    by_class: dict[int, list[int]] = {}
    for item in plan:
        ids = by_class.setdefault(item["label"], [])
        if item["subject"] not in ids:
            ids.append(item["subject"])
    train, test = [], []
    for label in sorted(by_class):
        ids = rng.permutation(by_class[label]).tolist()
        n_test = int(round(test_fraction * len(ids)))
        n_test = min(max(n_test, 1 if len(ids) >= 2 else 0), len(ids) - 1) if len(ids) >= 2 else 0
        test += ids[:n_test]
        train += ids[n_test:]
    return [f"{i:05d}" for i in sorted(train)], [f"{i:05d}" for i in sorted(test)]


def build_dataset(
    out: str | Path,
    walks: int,
    seed: int = 0,
    ratio: str = "1:1:2",
    view: str = "mixed",
    frames_per_seq: int = 120,
    test_fraction: float = 0.25,
    workers: int = 1,
    split_name: str | None = None,
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
) -> dict:
    """Write the dataset; returns a summary (counts per class and split, seconds taken)."""
    if walks < 1:
        raise SimConfigError(f"--walks must be >= 1, got {walks}")
    if frames_per_seq < 16:
        raise SimConfigError(f"--frames-per-seq must be >= 16, got {frames_per_seq}")
    check_view(view)
    check_thresholds(thresholds)
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_sequences(walks, seed, parse_ratio(ratio), view)
    jobs = [(str(out), seed, item, frames_per_seq, thresholds) for item in plan]
    workers = max(1, min(workers, os.cpu_count() or 1))
    if workers == 1:
        results = [_write_sequence(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_write_sequence, jobs, chunksize=8))
    train, test = split_subjects(plan, test_fraction, seed)
    name = split_name or ratio.replace(":", "")
    (out / f"Scoliosis1K_{name}.json").write_text(
        json.dumps({"TRAIN_SET": train, "TEST_SET": test}, indent=1)
    )
    truth = {
        "note": NOTE,
        "generator": "gaitsim",
        "seed": seed,
        "ratio_positive_neutral_negative": ratio,
        "view": view,
        "thresholds_deg": list(thresholds),
        "sequences": dict(results),
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    per_class = {c: sum(1 for r in results if r[1]["class"] == c) for c in CLASSES}
    return {
        "out": str(out),
        "sequences": len(results),
        "subjects": len(train) + len(test),
        "train_subjects": len(train),
        "test_subjects": len(test),
        "sequences_per_class": per_class,
        "split": f"Scoliosis1K_{name}.json",
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gaitsim.dataset",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument("--walks", type=int, required=True, help="number of sequences (walks) to write")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument(
        "--ratio", default="1:1:2", help="positive:neutral:negative, as in Scoliosis1K split names"
    )
    ap.add_argument(
        "--view",
        default="mixed",
        choices=["toward", "away", "side", "mixed"],
        help="walking direction relative to the camera",
    )
    ap.add_argument(
        "--frames-per-seq", type=int, default=120, help="at most this many frames per sequence"
    )
    ap.add_argument(
        "--test-fraction", type=float, default=0.25, help="share of subjects in TEST_SET"
    )
    ap.add_argument("--workers", type=int, default=1, help="rendering processes")
    ap.add_argument(
        "--split-name",
        default=None,
        help="split file Scoliosis1K_<name>.json (default from --ratio)",
    )
    ap.add_argument(
        "--thresholds",
        default="10:20",
        help="negative/neutral and neutral/positive severities, degrees",
    )
    args = ap.parse_args(argv)
    try:
        low, high = (float(x) for x in args.thresholds.split(":"))
        summary = build_dataset(
            args.out,
            args.walks,
            args.seed,
            args.ratio,
            args.view,
            args.frames_per_seq,
            args.test_fraction,
            args.workers,
            args.split_name,
            (low, high),
        )
    except (SimConfigError, ValueError) as err:
        sys.stderr.write(f"error: {err}" + "\n")
        return 2
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
