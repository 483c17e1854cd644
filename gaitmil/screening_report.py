"""What a model card reports beyond the confusion matrix (numpy; matplotlib only for the PNG):
bootstrap confidence intervals, calibration error and figures at a school-population prevalence.

Every function takes `labels` (int [N]) and `probs` (float [N, 3]) like gaitmil.metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import numpy as np
from numpy.typing import ArrayLike

from gaitcontract.spec import NEGATIVE
from gaitmil.metrics import accuracy, confusion_matrix, macro_prf, referral_scores, screening

# Prevalence of a Cobb angle of 10 degrees or more (the simulator's neutral + positive) among
# school children, used for the referral rate and PPV a school would see.
SCHOOL_PREVALENCE = 0.025
PREVALENCE_SOURCE = (
    "school screening found a Cobb angle >= 10 degrees in 2.52 % of 6,824 children aged "
    "6-17 (Du et al., BMC Musculoskeletal Disorders 17:303, 2016, doi:10.1186/s12891-016-1140-6) and "
    "in 2.4 % of 79,122 students aged 10-16 (Zheng et al., J Rehabil Med, doi:10.2340/16501977-2240); "
    "published programmes refer about 2.8-5 % of the children they screen"
)
BOOTSTRAP_SAMPLES = 2000
CALIBRATION_BINS = 10


class Interval(TypedDict):
    """One figure's point value and 95 % percentile interval."""

    value: float
    low: float
    high: float
    samples_used: int  # resamples in which the figure was defined


class BootstrapReport(TypedDict):
    samples: int
    resampled: str  # "subjects" or "walks"
    seed: int
    figures: dict[str, Interval]


def school_population(
    sensitivity: float, specificity: float, prevalence: float = SCHOOL_PREVALENCE
) -> dict:
    """Referral rate and positive predictive value if the screened population had `prevalence`."""
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence {prevalence} must be between 0 and 1")
    true_referrals = sensitivity * prevalence
    false_referrals = (1.0 - specificity) * (1.0 - prevalence)
    rate = true_referrals + false_referrals
    return {
        "prevalence": prevalence,
        "referral_rate": float(rate),
        "ppv": float(true_referrals / rate) if rate > 0 else float("nan"),
    }


def _figures(
    labels: np.ndarray, probs: np.ndarray, threshold: float, prevalence: float
) -> dict[str, float]:
    s = screening(labels, probs, threshold)
    school = school_population(s["sensitivity"], s["specificity"], prevalence)
    return {
        "accuracy": accuracy(labels, probs),
        "macro_f1": macro_prf(confusion_matrix(labels, probs))["f1"],
        "sensitivity": s["sensitivity"],
        "specificity": s["specificity"],
        "school_referral_rate": school["referral_rate"],
        "school_ppv": school["ppv"],
    }


def bootstrap(
    labels: ArrayLike,
    probs: ArrayLike,
    threshold: float,
    groups: ArrayLike | None = None,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    prevalence: float = SCHOOL_PREVALENCE,
) -> BootstrapReport:
    """95 % percentile intervals of accuracy, macro F1, the screening pair and the school figures.

    Resamples `groups` (subject ids: walks of one child are not independent) with replacement,
    or walks when groups is None. A resample without a referable or without a negative walk has
    no sensitivity or specificity and is left out of that interval (`samples_used` says how many)."""
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    keys, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(keys))]
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(samples):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(keys), size=len(keys))])
        rows.append(_figures(labels[idx], probs[idx], threshold, prevalence))
    point = _figures(labels, probs, threshold, prevalence)
    out: dict[str, Interval] = {}
    for key, value in point.items():
        values = np.array([r[key] for r in rows], np.float64)
        values = values[np.isfinite(values)]
        low, high = (
            np.percentile(values, [2.5, 97.5]) if values.size else (float("nan"), float("nan"))
        )
        out[key] = {
            "value": value,
            "low": float(low),
            "high": float(high),
            "samples_used": int(values.size),
        }
    return {
        "samples": samples,
        "resampled": "subjects" if len(keys) < len(labels) else "walks",
        "seed": seed,
        "figures": out,
    }


def calibration(labels, probs, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error (equal-width bins) of the top-label confidence and of the
    referral score P(neutral) + P(positive) against truly not negative, with the bin tables."""
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)

    def table(confidence: np.ndarray, correct: np.ndarray) -> tuple[float, list[dict]]:
        edges = np.linspace(0.0, 1.0, bins + 1)
        which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
        rows, ece = [], 0.0
        for b in range(bins):
            inside = which == b
            if not inside.any():
                continue
            conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
            ece += inside.mean() * abs(conf - acc)
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(inside.sum()),
                    "confidence": conf,
                    "observed": acc,
                }
            )
        return float(ece), rows

    top_ece, top_rows = table(probs.max(1), (probs.argmax(1) == labels).astype(np.float64))
    ref_ece, ref_rows = table(referral_scores(probs), (labels != NEGATIVE).astype(np.float64))
    return {
        "bins": bins,
        "ece_top_label": top_ece,
        "top_label": top_rows,
        "ece_referral": ref_ece,
        "referral": ref_rows,
    }


def plot_reliability(rows: dict[str, dict], png_path: Path) -> Path:
    """Reliability diagrams (one colour per dataset row) of the top label and the referral score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, key, title in (
        (axes[0], "top_label", "top-label confidence"),
        (axes[1], "referral", "P(neutral) + P(positive) vs not negative"),
    ):
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
        for name, cal in rows.items():
            bins = cal[key]
            ece = cal["ece_" + ("top_label" if key == "top_label" else "referral")]
            ax.plot(
                [b["confidence"] for b in bins],
                [b["observed"] for b in bins],
                "o-",
                label=f"{name} (ECE {100 * ece:.1f} %)",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted probability (bin mean)")
        ax.set_ylabel("observed frequency")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(
        "Reliability on held-out simulated walks (pipeline check, not a screening tool)",
        fontsize=10,
    )
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
