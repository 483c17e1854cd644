"""Several walks per child (issue 25, item 4): how a child's walks combine into one decision,
which rule the validation children choose, and what the decision gains on held-out children
with 1, 2 and 3 walks, with 95 % intervals from resampling children. numpy only.

A child is a subject id; its walks are taken in dataset order (a kiosk session's order when the
data was collected with `sim://...&repeats=N`). Every figure here is per child, never per walk,
except the one-walk AUC, the specificity at 95 % sensitivity and the ECE, which are per walk by
definition (a child's walks are resampled together all the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from gaitcontract.spec import NEGATIVE
from gaitmil.metrics import referral_scores, threshold_for_sensitivity
from gaitmil.screening_report import SCHOOL_PREVALENCE, calibration, school_population

# the kiosk implements both (edge.screening.threshold.CHILD_RULES, taken from the card's
# child_rule; the result contract's child_decision.rule); the mean first: it wins a tie
KIOSK_CHILD_RULE = "mean_p_not_negative"
CHILD_RULES: dict[str, Callable[[np.ndarray], float]] = {
    KIOSK_CHILD_RULE: lambda s: float(np.mean(s)),
    "max_p_not_negative": lambda s: float(np.max(s)),
}
RULE_TEXT = {
    KIOSK_CHILD_RULE: "mean of P(not negative) over the child's judged walks (one session token), "
    ">= the referral threshold: refer_for_clinical_exam",
    "max_p_not_negative": "max of P(not negative) over the child's judged walks (one session "
    "token), >= the referral threshold: refer_for_clinical_exam",
}
WALK_COUNTS = (1, 2, 3)
FIGURES = ("accuracy", "sensitivity", "specificity")
BOOTSTRAP_SAMPLES = 1000
# a child whose every walk falls inside the rescreen band gets no judged walk: the school
# figures count it as referred (a nurse's manual check), the cautious reading
UNRESOLVED = "referred (every walk inside the band: manual check)"


def children_of(subjects: Sequence[str]) -> list[np.ndarray]:
    """Walk indices per child, in first-seen order; each child's walks in dataset order."""
    order: dict[str, list[int]] = {}
    for i, subject in enumerate(subjects):
        order.setdefault(str(subject), []).append(i)
    return [np.asarray(idx, np.int64) for idx in order.values()]


def child_score(scores: ArrayLike, walks: int, rule: str = KIOSK_CHILD_RULE) -> float:
    """The child's score from its first `walks` walks' P(not negative) under `rule`."""
    if rule not in CHILD_RULES:
        raise ValueError(f"child rule {rule!r}: expected one of {tuple(CHILD_RULES)}")
    s = np.asarray(scores, np.float64).reshape(-1)[:walks]
    return CHILD_RULES[rule](s)


def _rates(truth: np.ndarray, referred: np.ndarray) -> dict[str, float]:
    pos, neg = int(truth.sum()), int((~truth).sum())
    return {
        "accuracy": float((referred == truth).mean()) if truth.size else float("nan"),
        "sensitivity": float((referred & truth).sum() / pos) if pos else float("nan"),
        "specificity": float((~referred & ~truth).sum() / neg) if neg else float("nan"),
    }


def _interval(point: float, values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    low, high = np.percentile(v, [2.5, 97.5]) if v.size else (float("nan"), float("nan"))
    return {
        "value": _round(point),
        "low": _round(low),
        "high": _round(high),
        "samples_used": int(v.size),
    }


def _round(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None


def _resamples(n: int, samples: int, seed: int) -> list[np.ndarray]:
    """Children drawn with replacement (the same draws for every figure: paired gains)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=n) for _ in range(samples)]


def choose_child_rule(
    labels: ArrayLike,
    probs: ArrayLike,
    subjects: Sequence[str],
    threshold: float,
    walks: int = 2,
) -> dict | None:
    """The rule that combines a child's walks, chosen on (validation) children with at least
    `walks` walks: the highest balanced accuracy ((sensitivity + specificity) / 2) of the
    `walks`-walk decision at `threshold`; a tie keeps the kiosk's rule. None without such
    children, or without a referable and a negative one among them."""
    labels = np.asarray(labels, np.int64)
    scores = referral_scores(np.asarray(probs, np.float64))
    kids = [idx for idx in children_of(subjects) if idx.size >= walks]
    truth = np.array([labels[idx[0]] != NEGATIVE for idx in kids], bool)
    if not kids or truth.all() or not truth.any():
        return None
    candidates = {}
    for rule in CHILD_RULES:
        referred = np.array([child_score(scores[idx], walks, rule) >= threshold for idx in kids])
        r = _rates(truth, referred)
        candidates[rule] = {
            "balanced_accuracy": round((r["sensitivity"] + r["specificity"]) / 2, 4),
            **{k: round(v, 4) for k, v in r.items()},
        }
    best = max(candidates, key=lambda k: candidates[k]["balanced_accuracy"])  # first wins a tie
    return {
        "rule": best,
        "text": RULE_TEXT[best],
        "chosen_by": f"balanced accuracy of the {walks}-walk decision at the referral threshold",
        "children": len(kids),
        "walks": walks,
        "candidates": candidates,
    }


def per_child_gain(
    labels: ArrayLike,
    probs: ArrayLike,
    subjects: Sequence[str],
    threshold: float,
    walk_counts: Sequence[int] = WALK_COUNTS,
    rule: str = KIOSK_CHILD_RULE,
    bootstrap_samples: int = 0,
    seed: int = 0,
) -> dict | None:
    """Accuracy (referral vs not), sensitivity and specificity of the per-child decision with the
    first 1, 2, 3 walks of each child, on the same children in every row: those with as many
    walks as the largest count any child reaches (a row beyond it is listed under `missing`).
    With bootstrap_samples, 95 % intervals of each figure and of its gain over one walk, children
    resampled. None when no child has two walks."""
    labels = np.asarray(labels, np.int64)
    scores = referral_scores(np.asarray(probs, np.float64))
    groups = children_of(subjects)
    longest = max((idx.size for idx in groups), default=0)
    counts = sorted({int(k) for k in walk_counts})
    reached = [k for k in counts if k <= longest]
    if not reached or max(reached) < 2:
        return None
    most = max(reached)
    kids = [idx for idx in groups if idx.size >= most]
    truth = np.array([labels[idx[0]] != NEGATIVE for idx in kids], bool)
    decided = {
        k: np.array([child_score(scores[idx], k, rule) >= threshold for idx in kids])
        for k in reached
    }
    draws = _resamples(len(kids), bootstrap_samples, seed)
    rows = []
    for k in reached:
        point = _rates(truth, decided[k])
        row: dict = {"walks": k, **{f: _round(point[f]) for f in FIGURES}}
        if draws:
            boot = [_rates(truth[d], decided[k][d]) for d in draws]
            row["intervals_95"] = {f: _interval(point[f], [b[f] for b in boot]) for f in FIGURES}
            if k > 1:
                one = _rates(truth, decided[1]) if 1 in decided else None
                if one is not None:
                    ones = [_rates(truth[d], decided[1][d]) for d in draws]
                    row["gain_over_one_walk"] = {
                        f: _interval(point[f] - one[f], [b[f] - o[f] for b, o in zip(boot, ones)])
                        for f in FIGURES
                    }
        rows.append(row)
    return {
        "rule": RULE_TEXT[rule],
        "rule_id": rule,
        "threshold": round(float(threshold), 4),
        "children": len(kids),
        "walks_each": most,
        "missing": [
            f"{k} walks: no held-out child walked {k} times" for k in counts if k > longest
        ],
        "bootstrap_samples": bootstrap_samples,
        "resampled": "children",
        "rows": rows,
    }


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of `scores` against `truth` (Mann-Whitney, ties counted half)."""
    pos, neg = scores[truth], scores[~truth]
    if not pos.size or not neg.size:
        return float("nan")
    ordered = np.sort(scores)
    # 1-based ranks, tied scores sharing their average rank
    ranks = (
        np.searchsorted(ordered, scores, "left") + np.searchsorted(ordered, scores, "right") + 1
    ) / 2.0
    return float((ranks[truth].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def auc_interval(
    truth: np.ndarray,
    scores: np.ndarray,
    subjects: Sequence[str],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict:
    """roc_auc of `scores` with its 95 % interval over resampled children (a child's walks go
    together): {"value", "low", "high", "samples_used"}, as screening_targets reports it."""
    groups = children_of(subjects)

    def auc_of(draw: np.ndarray) -> float:
        rows = np.concatenate([groups[g] for g in draw])
        return roc_auc(truth[rows], scores[rows])

    every = np.arange(len(groups))
    return _interval(auc_of(every), [auc_of(d) for d in _resamples(len(groups), samples, seed)])


def _specificity_at(truth: np.ndarray, scores: np.ndarray, sensitivity: float) -> float:
    """The best specificity whose sensitivity stays >= `sensitivity` (from these walks' ROC)."""
    if not truth.any() or truth.all():
        return float("nan")
    labels = np.where(truth, 2, NEGATIVE)
    probs = np.stack([1 - scores, np.zeros_like(scores), scores], axis=1)
    t = threshold_for_sensitivity(labels, probs, sensitivity)
    return float((scores[~truth] < t).mean()) if t is not None else float("nan")


def rescreen_decisions(
    scores: Sequence[np.ndarray], threshold: float, band: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kiosk with `screening.rescreen` and one walk per child: a walk inside [low, high) is
    `rescreen` and the child walks again; its first walk outside the band decides. Per child:
    (referred, rescreened at least once, unresolved: every walk inside the band, counted referred)."""
    low, high = band
    referred, again, unresolved = [], [], []
    for s in scores:
        outside = [float(p) for p in s if not low <= p < high]
        again.append(bool(low <= s[0] < high))
        unresolved.append(not outside)
        referred.append(outside[0] >= threshold if outside else True)
    return np.array(referred, bool), np.array(again, bool), np.array(unresolved, bool)


def screening_targets(
    labels: ArrayLike,
    probs: ArrayLike,
    subjects: Sequence[str],
    threshold: float,
    rule: str = KIOSK_CHILD_RULE,
    band: tuple[float, float] | None = None,
    prevalence: float = SCHOOL_PREVALENCE,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict:
    """The figures issue 25 judges a model by, each with a 95 % interval from resampling
    children: one-walk AUC and specificity at 95 % sensitivity (per walk), the two-walk
    decision's accuracy, sensitivity and specificity (per child, `rule`), the school referral
    rate and PPV at `prevalence` with the rescreen band `band` (per child, first walk outside
    the band decides), and the ECE of P(not negative) (per walk)."""
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    scores = referral_scores(probs)
    truth_walk = labels != NEGATIVE
    groups = children_of(subjects)
    draws = _resamples(len(groups), bootstrap_samples, seed)

    def walks_of(draw: np.ndarray) -> np.ndarray:
        return np.concatenate([groups[g] for g in draw]) if len(draw) else np.zeros(0, np.int64)

    def per_walk(fn: Callable[[np.ndarray], float]) -> dict:
        every = np.arange(len(groups))
        return _interval(fn(walks_of(every)), [fn(walks_of(d)) for d in draws])

    out: dict = {
        "children": len(groups),
        "walks": int(labels.size),
        "prevalence": prevalence,
        "bootstrap_samples": bootstrap_samples,
        "resampled": "children",
        "one_walk_auc": per_walk(lambda w: roc_auc(truth_walk[w], scores[w])),
        "one_walk_specificity_at_95_sensitivity": per_walk(
            lambda w: _specificity_at(truth_walk[w], scores[w], 0.95)
        ),
        "ece_referral": per_walk(
            lambda w: calibration(labels[w], probs[w])["ece_referral"] if w.size else float("nan")
        ),
        "two_walk": None,
        "rescreen": None,
    }
    pairs = [i for i, idx in enumerate(groups) if idx.size >= 2]
    if pairs:
        truth = np.array([labels[groups[i][0]] != NEGATIVE for i in pairs], bool)
        decided = np.array([child_score(scores[groups[i]], 2, rule) >= threshold for i in pairs])
        kid_draws = _resamples(len(pairs), bootstrap_samples, seed + 1)
        point = _rates(truth, decided)
        boot = [_rates(truth[d], decided[d]) for d in kid_draws]
        out["two_walk"] = {
            "rule": rule,
            "children": len(pairs),
            **{f: _interval(point[f], [b[f] for b in boot]) for f in FIGURES},
        }
    if band is not None and groups:
        truth = np.array([labels[idx[0]] != NEGATIVE for idx in groups], bool)
        referred, again, unresolved = rescreen_decisions(
            [scores[idx] for idx in groups], threshold, band
        )

        def school(t: np.ndarray, r: np.ndarray, a: np.ndarray) -> dict[str, float]:
            f = _rates(t, r)
            s = school_population(f["sensitivity"], f["specificity"], prevalence)
            # children asked to walk again, weighted to the school's mix as the referrals are
            pos_again = a[t].mean() if t.any() else float("nan")
            neg_again = a[~t].mean() if (~t).any() else float("nan")
            return {
                **f,
                "referral_rate": s["referral_rate"],
                "ppv": s["ppv"],
                "rescreen_rate": prevalence * pos_again + (1 - prevalence) * neg_again,
            }

        point = school(truth, referred, again)
        boot = [school(truth[d], referred[d], again[d]) for d in draws]
        out["rescreen"] = {
            "band": [float(band[0]), float(band[1])],
            "children": len(groups),
            "decision": "a walk inside the band is rescreen; the child's first walk outside it "
            f"decides; {UNRESOLVED}",
            "unresolved_children": int(unresolved.sum()),
            **{k: _interval(point[k], [b[k] for b in boot]) for k in point},
        }
    return out


def interval_text(f: dict | None) -> str:
    """'value % [low, high]', the value alone without an interval, '-' without a value."""
    if not f or f.get("value") is None:
        return "-"
    if f.get("low") is None:
        return f"{100 * f['value']:.1f} %"
    return f"{100 * f['value']:.1f} % [{100 * f['low']:.1f}, {100 * f['high']:.1f}]"


def per_child_lines(report: dict) -> list[str]:
    """The screening targets and the per-child rows, in words (evaluate's output, the card's text)."""
    lines = []
    t = report.get("screening_targets")
    if t:
        lines += [
            f"screening targets ({t['children']} children, {t['walks']} walks; 95 % intervals over "
            f"{t['bootstrap_samples']} resamples of children):",
            f"  one-walk AUC {interval_text(t['one_walk_auc'])}; specificity at 95 % sensitivity "
            f"{interval_text(t['one_walk_specificity_at_95_sensitivity'])} (from the test ROC, per walk)",
        ]
        two = t.get("two_walk")
        if two:
            lines.append(
                f"  two walks ({two['rule']}, {two['children']} children): accuracy "
                f"{interval_text(two['accuracy'])}, sensitivity {interval_text(two['sensitivity'])}, specificity "
                f"{interval_text(two['specificity'])}"
            )
        else:
            lines.append("  two walks: no child walked twice in this data")
        band = t.get("rescreen")
        if band:
            lines.append(
                f"  with the rescreen band [{band['band'][0]}, {band['band'][1]}) at "
                f"{100 * t['prevalence']:.1f} % prevalence: referral rate {interval_text(band['referral_rate'])}, "
                f"PPV {interval_text(band['ppv'])}, rescreened {interval_text(band['rescreen_rate'])}, sensitivity "
                f"{interval_text(band['sensitivity'])}, specificity {interval_text(band['specificity'])} "
                f"({band['unresolved_children']} children with every walk inside the band, counted "
                "as referred)"
            )
        else:
            lines.append("  rescreen band: none (the checkpoint stores none)")
        lines.append(f"  ECE of P(not negative) {interval_text(t['ece_referral'])}")
    child = report.get("per_child")
    if child:
        lines.append(
            f"per child ({child['rule_id']}, threshold {child['threshold']}), on the same "
            f"{child['children']} children with {child['walks_each']} walks in every row:"
        )
        for row in child["rows"]:
            ci = row.get("intervals_95") or {}
            gain = row.get("gain_over_one_walk")
            text = ", ".join(
                f"{f} {interval_text(ci.get(f) or {'value': row[f]})}"
                for f in ("accuracy", "sensitivity", "specificity")
            )
            if gain:
                text += f"; accuracy gain over one walk {interval_text(gain['accuracy'])}"
            lines.append(f"  {row['walks']} walk(s): {text}")
        for missing in child["missing"]:
            lines.append(f"  {missing}")
    return lines
