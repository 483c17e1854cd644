"""A linear baseline: what mean silhouettes alone tell about the class.

Each walk becomes its gait energy image (the mean of its silhouettes, pooled to
32x32), or with `--features profile` the sideways centre of each of its rows
(|offset| and offset squared, 128 numbers; gaitmil.lateral_profile); one
ridge classifier per view maps it to the three classes, and 1 - its
negative-class score ranks walks for the screening AUC. The ridge
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
from gaitcontract.spec import CLASSES, NEGATIVE
from gaitmil import metrics
from gaitmil.data import load_pkl, read_split, resolve_split, scan_sequences
from gaitmil.per_child import auc_interval
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


def lateral_profile(silhouettes: np.ndarray) -> np.ndarray:
    """[T, H, W] uint8 -> [2H] float32: |offset| and offset squared of each row's sideways
    centre in the mean silhouette (gaitmil.lateral_profile, the network's optional branch)."""
    import torch

    from gaitmil.lateral_profile import profile_features, row_offsets

    mean = torch.from_numpy(silhouettes.astype(np.float32).mean(axis=0) / 255.0)
    return profile_features(row_offsets(mean.unsqueeze(0)))[0].numpy()


# what a walk becomes for the ridge: its mean image, or where its rows sit sideways
FEATURES = {"gei": gait_energy, "profile": lateral_profile}


def load_walks(root: Path, split: str | Path, subset: str, features: str = "gei") -> Walks:
    ids = read_split(resolve_split(root, split))[subset]
    sequences = scan_sequences(root, ids)
    if not sequences:
        raise GaitMILError(f"{root}: the split's {subset} holds no walks; check --data and --split")
    return Walks(
        np.stack([FEATURES[features](load_pkl(s.path)) for s in sequences]),
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

    def scores(self, walks: Walks) -> np.ndarray:
        """[N, classes] ridge outputs (estimates of the one-hot class)."""
        unknown = sorted(set(walks.views) - set(self.weights))
        if unknown:
            raise GaitMILError(
                f"views {unknown} have no training walks; train on every view the test holds"
            )
        out = np.empty((len(walks.labels), len(CLASSES)))
        for view, (x_mean, y_mean, w) in self.weights.items():
            rows = walks.views == view
            out[rows] = (walks.features[rows] - x_mean) @ w + y_mean
        return out

    def predict(self, walks: Walks) -> np.ndarray:
        return np.argmax(self.scores(walks), axis=1)


def screening_auc(
    labels: np.ndarray, scores: np.ndarray, subjects: np.ndarray, seed: int
) -> tuple[float, list[float]]:
    """AUC of 1 - the negative class's score for "not negative", and its 95 % interval over
    resampled children (gaitmil.per_child.auc_interval)."""
    auc = auc_interval(
        labels != NEGATIVE, 1.0 - scores[:, NEGATIVE], subjects.tolist(), BOOTSTRAP_SAMPLES, seed
    )
    return auc["value"], [auc["low"], auc["high"]]


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
    parser.add_argument(
        "--features",
        choices=sorted(FEATURES),
        default="gei",
        help="gei: the mean silhouette, 2x2-pooled; profile: each row's sideways centre in it",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    add_version_flag(parser)
    args = parser.parse_args(argv)
    try:
        train = load_walks(args.data, args.split, "TRAIN_SET", args.features)
        test = load_walks(args.test_data, args.test_split, "TEST_SET", args.features)
        strength, val_scores = choose_strength(train, args.val_fraction, args.seed)
        scores = RidgeClassifier(strength).fit(train).scores(test)
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    predicted = np.argmax(scores, axis=1)
    auc, auc_ci = screening_auc(test.labels, scores, test.subjects, args.seed)
    report = {
        "note": "linear baseline on mean silhouettes; on simulated walks a pipeline check, not a screening figure",
        "train_walks": len(train.labels),
        "test_walks": len(test.labels),
        "features": args.features,
        "strength": strength,
        "validation_accuracy": val_scores,
        **figures(test.labels, predicted),
        "screening_auc": auc,
        "ci95": {**intervals(test.labels, predicted, args.seed), "screening_auc": auc_ci},
    }
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
