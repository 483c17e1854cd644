"""Classification and screening metrics (numpy only, reusable by calibration reports).

Every function takes `labels` (int [N], gaitcontract.spec.CLASSES indices) and
`probs` (float [N, 3]) as numpy arrays. "Referred" means the screening says
"not negative": P(neutral) + P(positive) >= threshold.
"""

from __future__ import annotations

import numpy as np

from gaitcontract.spec import CLASSES, NEGATIVE


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0] or labels.ndim != 1:
        raise ValueError(
            f"expected labels [N] and probs [N, C], got {labels.shape} and {probs.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must be class indices 0..{probs.shape[1] - 1}")
    return labels, probs


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def confusion_matrix(labels, probs) -> np.ndarray:
    """[C, C] counts, rows = true class, columns = predicted (argmax) class."""
    labels, probs = _check(labels, probs)
    c = probs.shape[1]
    cm = np.zeros((c, c), dtype=np.int64)
    np.add.at(cm, (labels, probs.argmax(1)), 1)
    return cm


def accuracy(labels, probs) -> float:
    labels, probs = _check(labels, probs)
    return _ratio(float((probs.argmax(1) == labels).sum()), labels.size)


def per_class(cm: np.ndarray) -> list[dict[str, float]]:
    """One-vs-rest sensitivity, specificity, precision and F1 of every class."""
    total = cm.sum()
    out = []
    for i in range(cm.shape[0]):
        tp = cm[i, i]
        fn = cm[i].sum() - tp
        fp = cm[:, i].sum() - tp
        tn = total - tp - fn - fp
        sens, prec = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
        f1 = (
            _ratio(2 * prec * sens, prec + sens)
            if np.isfinite(prec) and np.isfinite(sens)
            else float("nan")
        )
        out.append(
            {
                "sensitivity": sens,
                "specificity": _ratio(tn, tn + fp),
                "precision": prec,
                "f1": f1,
                "support": int(cm[i].sum()),
            }
        )
    return out


def macro_prf(cm: np.ndarray) -> dict[str, float]:
    """Macro precision, recall, F1 over the classes present in the labels (sklearn-like; NaN counted as 0)."""
    rows = [r for r in per_class(cm) if r["support"] > 0]
    if not rows:
        return {"precision": float("nan"), "recall": float("nan"), "f1": float("nan")}

    def mean(key: str) -> float:
        return float(np.mean([0.0 if not np.isfinite(r[key]) else r[key] for r in rows]))

    return {"precision": mean("precision"), "recall": mean("sensitivity"), "f1": mean("f1")}


def referral_scores(probs) -> np.ndarray:
    """P(not negative) of each walk."""
    probs = np.asarray(probs, dtype=np.float64)
    return 1.0 - probs[:, NEGATIVE]


def screening(labels, probs, threshold: float = 0.5) -> dict[str, float]:
    """Referred (P(not negative) >= threshold) against truly not negative."""
    labels, probs = _check(labels, probs)
    referred = referral_scores(probs) >= threshold
    truth = labels != NEGATIVE
    tp = int((referred & truth).sum())
    fn = int((~referred & truth).sum())
    fp = int((referred & ~truth).sum())
    tn = int((~referred & ~truth).sum())
    return {
        "threshold": float(threshold),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "referral_rate": _ratio(tp + fp, labels.size),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "tn": tn,
    }


def threshold_sweep(labels, probs, thresholds=None) -> list[dict[str, float]]:
    thresholds = np.round(np.linspace(0.05, 0.95, 19), 4) if thresholds is None else thresholds
    return [screening(labels, probs, float(t)) for t in thresholds]


def threshold_for_sensitivity(labels, probs, target: float = 0.95) -> float | None:
    """Highest threshold whose screening sensitivity is >= target (None without referable walks)."""
    labels, probs = _check(labels, probs)
    scores = referral_scores(probs)[labels != NEGATIVE]
    if scores.size == 0:
        return None
    # referring everything with a score >= t keeps sensitivity >= target while at most
    # floor((1 - target) * n) referable walks fall below t
    ordered = np.sort(scores)
    allowed_misses = int(np.floor((1.0 - target) * ordered.size + 1e-9))
    return float(ordered[allowed_misses])


def summarize(labels, probs, threshold: float = 0.5, target_sensitivity: float = 0.95) -> dict:
    """Everything evaluate prints, as a JSON-ready dict."""
    labels, probs = _check(labels, probs)
    cm = confusion_matrix(labels, probs)
    t95 = threshold_for_sensitivity(labels, probs, target_sensitivity)
    return {
        "count": int(labels.size),
        "classes": list(CLASSES[: probs.shape[1]]),
        "accuracy": accuracy(labels, probs),
        "confusion_matrix": cm.tolist(),
        "per_class": dict(zip(CLASSES, per_class(cm))),
        "macro": macro_prf(cm),
        "screening": screening(labels, probs, threshold),
        "sweep": threshold_sweep(labels, probs),
        "target_sensitivity": target_sensitivity,
        "threshold_at_target": t95,
        "screening_at_target": screening(labels, probs, t95) if t95 is not None else None,
    }


def _pct(x) -> str:
    return "   -  " if x is None or not np.isfinite(x) else f"{100 * x:5.1f}%"


def format_report(report: dict) -> str:
    """A readable table of summarize()'s output (gaitmil.paper.paper_block adds the published figures)."""
    lines = [
        f"walks: {report['count']}   accuracy: {_pct(report['accuracy'])}",
        "",
        "confusion matrix (rows true, columns predicted):",
        "            " + "".join(f"{c:>10}" for c in report["classes"]),
    ]
    for name, row in zip(report["classes"], report["confusion_matrix"]):
        lines.append(f"{name:>12}" + "".join(f"{v:>10d}" for v in row))
    lines += ["", f"{'class':>12}{'sens':>9}{'spec':>9}{'prec':>9}{'F1':>9}{'n':>6}"]
    for name, r in report["per_class"].items():
        lines.append(
            f"{name:>12}{_pct(r['sensitivity']):>9}{_pct(r['specificity']):>9}"
            f"{_pct(r['precision']):>9}{_pct(r['f1']):>9}{r['support']:>6d}"
        )
    m = report["macro"]
    lines.append(
        f"{'macro':>12}{_pct(m['recall']):>9}{'':>9}{_pct(m['precision']):>9}{_pct(m['f1']):>9}"
    )
    s = report["screening"]
    lines += [
        "",
        f"screening (referred = P(not negative) >= {s['threshold']:.2f}): sensitivity {_pct(s['sensitivity'])}, "
        f"specificity {_pct(s['specificity'])}, referral rate {_pct(s['referral_rate'])}",
    ]
    t = report.get("threshold_at_target")
    if t is not None:
        st = report["screening_at_target"]
        lines.append(
            f"threshold for >= {100 * report['target_sensitivity']:.0f}% sensitivity: {t:.3f} "
            f"(sensitivity {_pct(st['sensitivity'])}, specificity {_pct(st['specificity'])})"
        )
    lines += ["", "threshold  sens    spec    referred"]
    lines += [
        f"  {r['threshold']:.2f}   {_pct(r['sensitivity'])}  {_pct(r['specificity'])}  {_pct(r['referral_rate'])}"
        for r in report["sweep"]
    ]
    return "\n".join(lines)
