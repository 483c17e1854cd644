"""A linear baseline: what mean silhouettes alone tell about the class.

Each walk becomes its gait energy image (the mean of its silhouettes, pooled to
32x32); one ridge classifier per view maps it to the three classes. The ridge
strength is chosen on a validation part of the training subjects, never on the
test walks. It is a yardstick for Gait-MIL on the same data: a network that
does not beat it has learnt nothing a mean image does not show, and a baseline
that is low on clean masks too says the data, not the kiosk path, limits the
figures.

    python -m gaitmil.baseline --data build/kiosk-train --split build/kiosk-train/Scoliosis1K_kiosk.json \
        --test-data build/kiosk-test --test-split build/kiosk-test/Scoliosis1K_kiosk.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.errors import GaitMILError
from gaitcontract.spec import CLASSES
from gaitmil import metrics
from gaitmil.data import load_pkl, read_split, resolve_split, scan_sequences
from gaitmil.screening_report import bootstrap

POOL = 2  # 64x64 -> 32x32: 1,024 features, few enough for the few hundred walks of a site
STRENGTHS = (0.01, 0.1, 1.0, 10.0, 100.0)
BOOTSTRAP_SAMPLES = 2000
REFERRAL_THRESHOLD = 0.5  # on one-hot predictions: referred exactly when the class is not negative


@dataclass(frozen=True)
class Walks:
    features: np.ndarray  # [N, 1024] float32
    labels: np.ndarray  # [N] int
    views: np.ndarray  # [N] str
    subjects: np.ndarray  # [N] str


def gait_energy(silhouettes: np.ndarray) -> np.ndarray:
    """[T, 64, 64] uint8 -> [1024] float32: the mean silhouette, 2x2-pooled."""
    mean = silhouettes.astype(np.float32).mean(axis=0) / 255.0
    height, width = mean.shape
    return mean.reshape(height // POOL, POOL, width // POOL, POOL).mean(axis=(1, 3)).ravel()


def load_walks(root: Path, split: str | Path, subset: str) -> Walks:
    ids = read_split(resolve_split(root, split))[subset]
    sequences = scan_sequences(root, ids)
    if not sequences:
        raise GaitMILError(f"{root}: the split's {subset} holds no walks; check --data and --split")
    return Walks(
        np.stack([gait_energy(load_pkl(s.path)) for s in sequences]),
        np.array([s.label for s in sequences]),
        np.array([s.view for s in sequences]),
        np.array([s.subject for s in sequences]),
    )


class RidgeClassifier:
    """One-hot ridge regression per view; the class is the largest score."""

    def __init__(self, strength: float) -> None:
        self.strength = strength
        self.weights: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def fit(self, walks: Walks) -> RidgeClassifier:
        for view in np.unique(walks.views):
            x = walks.features[walks.views == view]
            y = np.eye(len(CLASSES))[walks.labels[walks.views == view]]
            x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
            xc = x - x_mean
            gram = xc.T @ xc + self.strength * np.eye(x.shape[1])
            self.weights[view] = (x_mean, y_mean, np.linalg.solve(gram, xc.T @ (y - y_mean)))
        return self

    def predict(self, walks: Walks) -> np.ndarray:
        unknown = sorted(set(walks.views) - set(self.weights))
        if unknown:
            raise GaitMILError(
                f"views {unknown} have no training walks; train on every view the test holds"
            )
        out = np.empty(len(walks.labels), dtype=int)
        for view, (x_mean, y_mean, w) in self.weights.items():
            rows = walks.views == view
            out[rows] = np.argmax((walks.features[rows] - x_mean) @ w + y_mean, axis=1)
        return out


def subset(walks: Walks, rows: np.ndarray) -> Walks:
    return Walks(walks.features[rows], walks.labels[rows], walks.views[rows], walks.subjects[rows])


def choose_strength(
    train: Walks, val_fraction: float, seed: int
) -> tuple[float, dict[float, float]]:
    """The ridge strength with the best accuracy on held-out training subjects."""
    subjects = np.unique(train.subjects)
    held = np.random.default_rng(seed).permutation(subjects)[
        : max(1, int(len(subjects) * val_fraction))
    ]
    is_val = np.isin(train.subjects, held)
    fit_part, val_part = subset(train, ~is_val), subset(train, is_val)
    scores = {
        s: float((RidgeClassifier(s).fit(fit_part).predict(val_part) == val_part.labels).mean())
        for s in STRENGTHS
    }
    return max(scores, key=lambda s: (scores[s], s)), scores


def one_hot(predicted: np.ndarray) -> np.ndarray:
    """Class predictions as probabilities, so the project's screening metrics apply to them:
    a walk is referred (P(not negative) = 1) exactly when its class is not negative."""
    return np.eye(len(CLASSES))[predicted]


def figures(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    screen = metrics.screening(labels, one_hot(predicted), REFERRAL_THRESHOLD)
    return {
        "accuracy": metrics.accuracy(labels, one_hot(predicted)),
        "sensitivity": screen["sensitivity"],
        "specificity": screen["specificity"],
    }


def intervals(labels: np.ndarray, predicted: np.ndarray, seed: int) -> dict[str, list[float]]:
    """95 % percentile bootstrap intervals over walks (gaitmil.screening_report.bootstrap)."""
    drawn = bootstrap(
        labels, one_hot(predicted), REFERRAL_THRESHOLD, samples=BOOTSTRAP_SAMPLES, seed=seed
    )
    return {
        key: [drawn["figures"][key]["low"], drawn["figures"][key]["high"]]
        for key in figures(labels, predicted)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gaitmil.baseline",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="training data (Scoliosis1K layout)"
    )
    parser.add_argument("--split", required=True, help="split of --data; its TRAIN_SET is used")
    parser.add_argument(
        "--test-data", type=Path, required=True, help="test data (Scoliosis1K layout)"
    )
    parser.add_argument(
        "--test-split", required=True, help="split of --test-data; its TEST_SET is used"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="training subjects held out to pick the strength",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the validation draw and the bootstrap"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    add_version_flag(parser)
    args = parser.parse_args(argv)
    try:
        train = load_walks(args.data, args.split, "TRAIN_SET")
        test = load_walks(args.test_data, args.test_split, "TEST_SET")
        strength, val_scores = choose_strength(train, args.val_fraction, args.seed)
        predicted = RidgeClassifier(strength).fit(train).predict(test)
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    report = {
        "note": "linear baseline on mean silhouettes; on simulated walks a pipeline check, not a screening figure",
        "train_walks": len(train.labels),
        "test_walks": len(test.labels),
        "strength": strength,
        "validation_accuracy": val_scores,
        **figures(test.labels, predicted),
        "ci95": intervals(test.labels, predicted, args.seed),
    }
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
