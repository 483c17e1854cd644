"""How much the phase bags know about the gait cycle, on held-out simulated walks.

    python -m gaitmil.phase_info --data DIR [--split NAME] [--checkpoint CKPT]
        [--phase-features walk_residual|appearance] [--bins 8] [--json OUT]

For every TEST_SET walk of a simulated dataset (gaitsim.dataset writes each
frame's true stride phase into truth.json), the frames the kiosk samples
(DEFAULT_FRAMES, evenly spaced) are put into bags and compared with the true
phase cut into `--bins` equal bins. Prints the mutual information
I(bag; phase) in bits, the bag entropy (its ceiling) and, for contrast,
I(bag; walker): bags that follow the gait cycle score high on the first and
low on the second.

With --checkpoint the bags are the checkpoint's own lookup (the torch graph
that is exported); without it, centroids of the chosen --phase-features are
fitted by k-means++ on the TRAIN_SET walks first, as training does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.errors import DatasetError, GaitMILError
from gaitcontract.spec import DEFAULT_FRAMES, DEFAULT_PHASES, even_indices


def mutual_information(a, b) -> float:
    """I(a; b) in bits of two equally long sequences of non-negative integer labels."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"expected two equally long non-empty label sequences, got {a.shape} and {b.shape}"
        )
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pa @ pb)[nz])).sum())


def entropy(a) -> float:
    """H(a) in bits."""
    p = np.bincount(np.asarray(a, np.int64)) / len(a)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def phase_bins(phase: np.ndarray, bins: int) -> np.ndarray:
    return np.floor(np.asarray(phase, np.float64) * bins).astype(np.int64) % bins


def held_out_walks(root: Path, split: str, subset: str = "test", frames: int = DEFAULT_FRAMES):
    """(walks [T, 64, 44] uint8, true phases [T], views, subject ids) of a subset, kiosk-sampled."""
    from gaitcontract.silhouette import cut
    from gaitmil.data import load_pkl, read_split, resolve_split, scan_sequences
    from gaitmil.paper import simulated_truth

    truth_path = root / "truth.json"
    truth = simulated_truth(root, "the phase truth")
    ids = read_split(resolve_split(root, split))["TEST_SET" if subset == "test" else "TRAIN_SET"]
    walks, phases, views, subjects = [], [], [], []
    for seq in scan_sequences(root, ids):
        rel = seq.path.parent.relative_to(root).as_posix()
        entry = truth.get(rel)
        if entry is None or "phase" not in entry:
            raise DatasetError(
                f"{truth_path} holds no per-frame gait phase for {rel}: regenerate the dataset "
                "with this version of python -m gaitsim.dataset"
            )
        arr = load_pkl(seq.path)
        if len(entry["phase"]) != len(arr):
            raise DatasetError(
                f"{rel}: {len(arr)} frames but {len(entry['phase'])} phases in {truth_path}"
            )
        idx = even_indices(len(arr), frames)
        walks.append(cut(arr[idx]))
        phases.append(np.asarray(entry["phase"], np.float64)[idx])
        views.append(str(entry.get("view", seq.view)))
        subjects.append(seq.subject)
    return walks, phases, views, subjects


def bags_from_checkpoint(
    checkpoint: Path, walks: list[np.ndarray]
) -> tuple[list[np.ndarray], str, int]:
    import torch

    from gaitmil.checkpoint import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    out = []
    with torch.no_grad():
        for w in walks:
            x = torch.from_numpy(w.astype(np.float32) / np.float32(255.0))[None]
            onehot = model.assign_phases(x, torch.ones(1, len(w), dtype=torch.bool))
            out.append(onehot[0].argmax(-1).numpy())
    return out, model.config.phase_features, model.config.phases


def bags_from_fit(
    train_walks: list[np.ndarray], walks: list[np.ndarray], kind: str, k: int, seed: int
) -> list[np.ndarray]:
    from gaitmil.phases import assign_walk, fit_walk_centroids

    centroids = fit_walk_centroids(train_walks, kind, k=k, seed=seed)
    return [assign_walk(w, centroids, kind) for w in walks]


def report(
    bags: list[np.ndarray],
    phases: list[np.ndarray],
    views: list[str],
    subjects: list[str],
    bins: int,
) -> dict:
    """MI of bags with the phase bins (all walks and per view) and with the walker."""
    bag = np.concatenate(bags)
    true = phase_bins(np.concatenate(phases), bins)
    walker_ids = {s: i for i, s in enumerate(sorted(set(subjects)))}
    walker = np.concatenate([np.full(len(b), walker_ids[s]) for b, s in zip(bags, subjects)])
    per_view = {}
    for view in sorted(set(views)):
        keep = [i for i, v in enumerate(views) if v == view]
        vb = np.concatenate([bags[i] for i in keep])
        vp = phase_bins(np.concatenate([phases[i] for i in keep]), bins)
        per_view[view] = {"walks": len(keep), "mi_phase_bits": mutual_information(vb, vp)}
    return {
        "walks": len(bags),
        "frames": int(bag.size),
        "phase_bins": bins,
        "mi_phase_bits": mutual_information(bag, true),
        "bag_entropy_bits": entropy(bag),
        "phase_entropy_bits": entropy(true),
        "mi_walker_bits": mutual_information(bag, walker),
        "per_view": per_view,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.phase_info",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument(
        "--data", required=True, type=Path, help="a simulated dataset (python -m gaitsim.dataset)"
    )
    ap.add_argument(
        "--split", default="112", help="split name or JSON path (TEST_SET walks are measured)"
    )
    ap.add_argument(
        "--checkpoint", type=Path, default=None, help="measure this checkpoint's own lookup"
    )
    ap.add_argument(
        "--phase-features",
        default="walk_residual",
        choices=["walk_residual", "appearance"],
        help="without --checkpoint: the features to fit centroids on (TRAIN_SET walks)",
    )
    ap.add_argument(
        "--phases", type=int, default=DEFAULT_PHASES, help="without --checkpoint: K bags"
    )
    ap.add_argument("--bins", type=int, default=8, help="equal bins of the true stride phase")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the centroid fit")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here as JSON")
    args = ap.parse_args(argv)
    try:
        if args.bins < 2:
            raise GaitMILError(f"--bins {args.bins} must be at least 2")
        walks, phases, views, subjects = held_out_walks(args.data, args.split)
        if args.checkpoint is not None:
            bags, kind, k = bags_from_checkpoint(args.checkpoint, walks)
            source = str(args.checkpoint)
        else:
            train_walks = held_out_walks(args.data, args.split, subset="train")[0]
            kind, k, source = args.phase_features, args.phases, "k-means++ on TRAIN_SET walks"
            bags = bags_from_fit(train_walks, walks, kind, k, args.seed)
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    result = {
        "data": str(args.data),
        "split": args.split,
        "phase_features": kind,
        "phases": k,
        "centroids": source,
        **report(bags, phases, views, subjects, args.bins),
    }
    sys.stdout.write(
        f"{result['walks']} held-out walks, {result['frames']} frames; {k} bags on {kind} features ({source})\n"
        f"I(bag; true phase, {args.bins} bins) = {result['mi_phase_bits']:.3f} bits "
        f"(bag entropy {result['bag_entropy_bits']:.3f}, phase entropy {result['phase_entropy_bits']:.3f})\n"
        f"I(bag; walker) = {result['mi_walker_bits']:.3f} bits\n"
        + "".join(
            f"  view {v}: {r['walks']} walks, I(bag; phase) = {r['mi_phase_bits']:.3f} bits\n"
            for v, r in result["per_view"].items()
        )
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
