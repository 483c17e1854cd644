"""The reproduction table's numbers: point metrics, subject-level bootstrap
confidence intervals, fold summaries and the markdown table (numpy only).

Bootstrap: resample subjects (all walks of a drawn subject together) with
replacement, recompute every metric, take the 2.5th and 97.5th percentiles.
Resampling subjects rather than walks keeps the interval honest when a
subject has several walks. All metrics come from per-subject counts (a
3 x 3 confusion matrix and the screening tp/fn/fp/tn), so a replicate is a
weighted sum of those counts: thousands of replicates take milliseconds.
"""

from __future__ import annotations

import numpy as np

from gaitcontract.spec import CLASSES, NEGATIVE
from gaitmil.metrics import referral_scores

# metric key -> column label, in table order
COLUMNS: dict[str, str] = {
    "accuracy": "accuracy",
    **{f"{c}_sensitivity": f"{c} sens" for c in CLASSES},
    **{f"{c}_specificity": f"{c} spec" for c in CLASSES},
    "macro_f1": "macro F1",
    "screening_sensitivity": "screening sens",
    "screening_specificity": "screening spec",
}


def _counts(labels: np.ndarray, probs: np.ndarray, groups: np.ndarray, threshold: float):
    """(group names, [G, 13] counts: 9 confusion cells row-major, then screening tp, fn, fp, tn)."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(probs).argmax(1)
    referred = referral_scores(probs) >= threshold
    truth = labels != NEGATIVE
    names, index = np.unique(np.asarray(groups), return_inverse=True)
    m = np.zeros((len(names), 13))
    np.add.at(m, (index, labels * 3 + pred), 1)
    for col, cell in enumerate(
        (referred & truth, ~referred & truth, referred & ~truth, ~referred & ~truth)
    ):
        np.add.at(m[:, 9 + col], index, cell.astype(float))
    return names, m


def _metrics_from_counts(totals: np.ndarray) -> dict[str, np.ndarray]:
    """Every COLUMNS metric of [R, 13] count totals (NaN where undefined, e.g. an absent class)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = totals[:, :9].reshape(-1, 3, 3)
        n = cm.sum((1, 2))
        diag = np.diagonal(cm, axis1=1, axis2=2)
        rows, cols = cm.sum(2), cm.sum(1)
        out = {"accuracy": diag.sum(1) / n}
        for i, c in enumerate(CLASSES):
            out[f"{c}_sensitivity"] = diag[:, i] / rows[:, i]
            out[f"{c}_specificity"] = (n - rows[:, i] - cols[:, i] + diag[:, i]) / (n - rows[:, i])
        f1 = 2 * diag / (2 * diag + (rows - diag) + (cols - diag))  # 2tp / (2tp + fn + fp)
        present = rows > 0  # macro over the classes present in the labels, as gaitmil.metrics
        out["macro_f1"] = np.where(present, np.nan_to_num(f1), 0).sum(1) / present.sum(1)
        tp, fn, fp, tn = (totals[:, 9 + i] for i in range(4))
        out["screening_sensitivity"] = tp / (tp + fn)
        out["screening_specificity"] = tn / (tn + fp)
    return out


def point_metrics(labels, probs, threshold: float = 0.5) -> dict[str, float]:
    """COLUMNS metrics of one evaluation (argmax classes; screening at `threshold`)."""
    _, m = _counts(labels, probs, np.arange(len(labels)), threshold)
    return {k: float(v[0]) for k, v in _metrics_from_counts(m.sum(0, keepdims=True)).items()}


def bootstrap_intervals(
    labels,
    probs,
    groups,
    threshold: float = 0.5,
    replicates: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile interval of every COLUMNS metric over `replicates` subject-level resamples."""
    names, m = _counts(labels, probs, groups, threshold)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)), size=replicates)
    values = _metrics_from_counts(weights @ m)
    tail = 100 * (1 - level) / 2
    out = {}
    for key, v in values.items():
        v = v[np.isfinite(v)]
        out[key] = (
            (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
            if v.size
            else (
                float("nan"),
                float("nan"),
            )
        )
    return out


def fold_summary(folds: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, sample standard deviation, min and max of each metric over folds."""
    out = {}
    for key in COLUMNS:
        v = np.array([f[key] for f in folds], dtype=float)
        v = v[np.isfinite(v)]
        out[key] = {
            "mean": float(v.mean()) if v.size else float("nan"),
            "sd": float(v.std(ddof=1)) if v.size > 1 else float("nan"),
            "min": float(v.min()) if v.size else float("nan"),
            "max": float(v.max()) if v.size else float("nan"),
            "folds": int(v.size),
        }
    return out


def _pct(x: float) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def markdown_rows(rows: list[dict]) -> list[str]:
    """A markdown table: one row per evaluation {split, pooling, walks, point, ci}; cells 'value
    [low, high]' in percent."""
    head = ["split", "pooling", "walks", *COLUMNS.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["split"], r["pooling"], str(r["walks"])]
        for key in COLUMNS:
            lo, hi = r["ci"][key]
            cells.append(f"{_pct(r['point'][key])} [{_pct(lo)}, {_pct(hi)}]")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_fold_rows(rows: list[dict]) -> list[str]:
    """One row per (split, pooling) of K-fold results: 'mean ± sd (min-max)' in percent."""
    head = ["split", "pooling", "folds", *COLUMNS.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["split"], r["pooling"], str(r["folds"])]
        for key in COLUMNS:
            s = r["summary"][key]
            cells.append(f"{_pct(s['mean'])} ± {_pct(s['sd'])} ({_pct(s['min'])}-{_pct(s['max'])})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
