"""Operating points a school programme can choose, the rescreen band and the per-child decision
(issue 25, item 4). numpy only: training, evaluation and the card call in; the kiosk reads what
they wrote into card.json (edge.screening.threshold).

- An operating point is a target (`sensitivity` with a value, or `referral_rate` with a value: the
  share of screened children referred at the school prevalence) and the threshold on
  P(not negative) chosen for it on validation walks, with the validation figures and, at
  SCHOOL_PREVALENCE, the referral rate and PPV with bootstrap intervals.
- The rescreen band is [threshold - w, threshold + w): a walk scoring inside it is asked to walk
  again instead of being referred or not. w is the widest half-width whose share of validation
  walks inside the band stays <= the stated rescreen rate.
- The per-child decision: a child's judged walks combined by a rule (the mean of P(not
  negative), CHILD_RULE, or the max) chosen on the validation children with two walks, compared
  with the same threshold (gaitmil.per_child). `per_child_gain` reports it on held-out children
  with 1, 2 and 3 walks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from gaitcontract.spec import NEGATIVE
from gaitmil.metrics import referral_scores, threshold_for_sensitivity
from gaitmil.per_child import KIOSK_CHILD_RULE, RULE_TEXT, choose_child_rule
from gaitmil.screening_report import SCHOOL_PREVALENCE, bootstrap, school_population

TARGETS = ("sensitivity", "referral_rate")
# the operating points training reports by default: the 95 %-sensitivity rule and school referral rates
DEFAULT_TARGETS: tuple[tuple[str, float], ...] = (
    ("sensitivity", 0.95),
    ("sensitivity", 0.90),
    ("referral_rate", 0.10),
    ("referral_rate", 0.05),
)
DEFAULT_RESCREEN_RATE = 0.10
CHILD_RULE = RULE_TEXT[KIOSK_CHILD_RULE]


def point_key(target: str, value: float) -> str:
    """How an operating point is named in the card and the kiosk's messages: 'sensitivity=0.95'."""
    return f"{target}={float(value):g}"


def _screen_figures(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    truth = labels != NEGATIVE
    referred = scores >= threshold
    pos, neg = int(truth.sum()), int((~truth).sum())
    sens = float((referred & truth).sum() / pos) if pos else float("nan")
    spec = float((~referred & ~truth).sum() / neg) if neg else float("nan")
    return {"sensitivity": sens, "specificity": spec, "referred": float(referred.mean())}


def threshold_for_referral_rate(
    labels: ArrayLike, probs: ArrayLike, rate: float, prevalence: float = SCHOOL_PREVALENCE
) -> float | None:
    """Lowest threshold whose referral rate at `prevalence` (from the validation sensitivity and
    specificity) is <= rate: the most sensitive point the programme's referral budget allows.
    None when the walks hold no referable or no negative walk."""
    labels = np.asarray(labels, np.int64)
    scores = referral_scores(np.asarray(probs, np.float64))
    if not (labels != NEGATIVE).any() or not (labels == NEGATIVE).any():
        return None
    candidates = np.unique(np.concatenate([scores, [1.0 + 1e-9]]))
    for t in candidates:  # ascending: the first that fits is the lowest
        f = _screen_figures(labels, scores, float(t))
        school = school_population(f["sensitivity"], f["specificity"], prevalence)
        if school["referral_rate"] <= rate + 1e-12:
            return float(min(t, 1.0 - 1e-6))
    return None


def choose_threshold(
    labels: ArrayLike,
    probs: ArrayLike,
    target: str,
    value: float,
    prevalence: float = SCHOOL_PREVALENCE,
) -> float | None:
    if target == "sensitivity":
        return threshold_for_sensitivity(labels, probs, value)
    if target == "referral_rate":
        return threshold_for_referral_rate(labels, probs, value, prevalence)
    raise ValueError(f"operating-point target {target!r}: expected one of {TARGETS}")


def rescreen_band(probs: ArrayLike, threshold: float, rate: float) -> dict:
    """The band [threshold - w, threshold + w) whose share of these (validation) walks is <= rate."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rescreen rate {rate} must be in [0, 1)")
    scores = referral_scores(np.asarray(probs, np.float64))
    distance = np.sort(np.abs(scores - threshold))
    allowed = int(np.floor(rate * distance.size + 1e-9))
    # walks strictly closer than the (allowed+1)-th distance fall inside: at most `allowed` of them
    half = float(distance[allowed]) if allowed < distance.size else float(distance[-1]) + 1e-6
    # stored to 4 decimals, rounded inwards so that the stored band holds no more walks
    low = max(0.0, math.ceil((threshold - half) * 1e4 + 1e-7) / 1e4)
    high = min(1.0, math.floor((threshold + half) * 1e4) / 1e4)
    # the band always holds the threshold as the card stores it (4 decimals): the kiosk checks
    # low <= threshold <= high; an empty band [t, t) rescreens nobody
    shown = round(float(threshold), 4)
    low, high = min(low, shown), max(high, shown)
    inside = (scores >= low) & (scores < high)
    return {
        "low": low,
        "high": high,
        "target_rescreen_rate": float(rate),
        "validation_rescreen_rate": float(inside.mean()) if scores.size else 0.0,
        "rule": "rescreen when low <= P(not negative) < high",
    }


def operating_point(
    labels: ArrayLike,
    probs: ArrayLike,
    target: str,
    value: float,
    groups: ArrayLike | None = None,
    bootstrap_samples: int = 500,
    prevalence: float = SCHOOL_PREVALENCE,
    rescreen_rate: float = DEFAULT_RESCREEN_RATE,
    seed: int = 0,
) -> dict | None:
    """One row of the card's operating-point table; None when these walks cannot choose it."""
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    threshold = choose_threshold(labels, probs, target, value, prevalence)
    if threshold is None:
        return None
    fig = _screen_figures(labels, referral_scores(probs), threshold)
    boot = bootstrap(labels, probs, threshold, groups, bootstrap_samples, seed, prevalence)
    school = school_population(fig["sensitivity"], fig["specificity"], prevalence)

    def interval(key: str) -> dict:
        f = boot["figures"][key]
        return {k: round(float(f[k]), 4) for k in ("value", "low", "high")}

    return {
        "target": target,
        "value": float(value),
        "key": point_key(target, value),
        "threshold": round(float(threshold), 4),
        "validation": {
            "walks": int(labels.size),
            "sensitivity": round(fig["sensitivity"], 4),
            "specificity": round(fig["specificity"], 4),
        },
        "school": {
            "prevalence": prevalence,
            "referral_rate": {
                **interval("school_referral_rate"),
                "value": round(school["referral_rate"], 4),
            },
            "ppv": interval("school_ppv"),
            "bootstrap_samples": bootstrap_samples,
            "resampled": boot["resampled"],
        },
        "rescreen_band": rescreen_band(probs, threshold, rescreen_rate),
    }


def operating_points(
    labels: ArrayLike,
    probs: ArrayLike,
    targets: Sequence[tuple[str, float]] = DEFAULT_TARGETS,
    groups: ArrayLike | None = None,
    bootstrap_samples: int = 500,
    prevalence: float = SCHOOL_PREVALENCE,
    rescreen_rate: float = DEFAULT_RESCREEN_RATE,
) -> list[dict]:
    """The card's table: one row per target these walks can choose a threshold for."""
    rows = (
        operating_point(labels, probs, t, v, groups, bootstrap_samples, prevalence, rescreen_rate)
        for t, v in targets
    )
    return [row for row in rows if row is not None]


def validation_extras(
    labels: ArrayLike,
    probs: ArrayLike,
    threshold: float,
    subjects: Sequence[str] | None = None,
    rescreen_rate: float = DEFAULT_RESCREEN_RATE,
    bootstrap_samples: int = 500,
) -> dict:
    """What training stores beside referral_threshold (meta["extra"]; the card copies it): the
    operating-point table and the rescreen band around the default threshold, both chosen on the
    walks the threshold was chosen on, and (when those walks hold children with two walks) the
    rule that combines a child's walks, chosen on those children."""
    extra = {
        "operating_points": operating_points(
            labels,
            probs,
            groups=subjects,
            bootstrap_samples=bootstrap_samples,
            rescreen_rate=rescreen_rate,
        ),
        "rescreen_band": rescreen_band(probs, threshold, rescreen_rate),
    }
    rule = choose_child_rule(labels, probs, subjects, threshold) if subjects is not None else None
    if rule is not None:
        extra["child_rule"] = rule
    return extra
