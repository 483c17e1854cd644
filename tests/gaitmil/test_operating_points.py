"""Operating points, the rescreen band and the per-child decision (issue 25 item 4) on tiny synthetic sets."""

from __future__ import annotations

import numpy as np
import pytest

from gaitmil.operating_points import (
    operating_points,
    rescreen_band,
    threshold_for_referral_rate,
    validation_extras,
)
from gaitmil.per_child import per_child_gain
from gaitmil.screening_report import school_population


def _probs(p_not_negative: np.ndarray) -> np.ndarray:
    p = np.asarray(p_not_negative, np.float64)
    return np.stack([1 - p, p / 2, p / 2], axis=1)


def _set(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    score = np.clip(np.where(labels == 0, 0.3, 0.7) + rng.normal(0, 0.15, n), 0.001, 0.999)
    return labels, _probs(score)


def test_referral_rate_target_keeps_the_school_rate_within_budget() -> None:
    labels, probs = _set()
    t = threshold_for_referral_rate(labels, probs, 0.10)
    assert t is not None
    score = 1 - probs[:, 0]
    truth = labels != 0
    sens = ((score >= t) & truth).sum() / truth.sum()
    spec = ((score < t) & ~truth).sum() / (~truth).sum()
    assert school_population(sens, spec)["referral_rate"] <= 0.10 + 1e-9
    # a tighter budget never gives a lower threshold
    tight = threshold_for_referral_rate(labels, probs, 0.03)
    assert tight is not None and tight >= t


def test_operating_point_table_has_thresholds_figures_and_intervals() -> None:
    labels, probs = _set()
    rows = operating_points(
        labels, probs, [("sensitivity", 0.95), ("referral_rate", 0.05)], bootstrap_samples=50
    )
    assert [r["key"] for r in rows] == ["sensitivity=0.95", "referral_rate=0.05"]
    sens_row, rate_row = rows
    assert sens_row["validation"]["sensitivity"] >= 0.95
    assert rate_row["threshold"] > sens_row["threshold"]
    for row in rows:
        rr = row["school"]["referral_rate"]
        assert rr["low"] <= rr["value"] <= rr["high"]
        assert row["school"]["prevalence"] == 0.025
        assert row["rescreen_band"]["low"] < row["threshold"] < row["rescreen_band"]["high"]


def test_no_referable_walk_gives_no_row() -> None:
    assert operating_points(np.zeros(5, int), _probs(np.full(5, 0.2)), bootstrap_samples=5) == []


def test_rescreen_band_holds_at_most_the_stated_share() -> None:
    _, probs = _set()
    band = rescreen_band(probs, 0.5, 0.10)
    score = 1 - probs[:, 0]
    inside = ((score >= band["low"]) & (score < band["high"])).mean()
    assert inside <= 0.10 + 1e-9
    assert band["validation_rescreen_rate"] == pytest.approx(inside)
    assert band["validation_rescreen_rate"] > 0.05  # not needlessly narrow
    zero = rescreen_band(probs, 0.5, 0.0)
    assert zero["validation_rescreen_rate"] == 0.0
    # the stored band holds the stored (4-decimal) threshold, as the kiosk requires
    odd = rescreen_band(probs, 0.716573, 0.0)
    assert odd["low"] <= round(0.716573, 4) <= odd["high"]
    with pytest.raises(ValueError):
        rescreen_band(probs, 0.5, 1.0)


def test_validation_extras_is_what_the_card_copies() -> None:
    labels, probs = _set()
    extra = validation_extras(labels, probs, 0.4, bootstrap_samples=20)
    assert set(extra) == {"operating_points", "rescreen_band"}
    assert extra["operating_points"]


def test_per_child_gain_with_several_walks_per_subject() -> None:
    rng = np.random.default_rng(1)
    children = 120
    truth = rng.integers(0, 3, children)
    labels, scores, subjects = [], [], []
    for c in range(children):
        for _ in range(3):
            labels.append(truth[c])
            centre = 0.3 if truth[c] == 0 else 0.7
            scores.append(np.clip(centre + rng.normal(0, 0.25), 0.001, 0.999))
            subjects.append(f"{c:05d}")
    # one child with a single walk is left out (every row uses the same children)
    labels.append(0)
    scores.append(0.1)
    subjects.append("99999")
    gain = per_child_gain(np.array(labels), _probs(np.array(scores)), subjects, 0.5)
    assert gain is not None
    assert gain["children"] == children
    rows = {r["walks"]: r for r in gain["rows"]}
    assert set(rows) == {1, 2, 3}
    assert rows[3]["accuracy"] > rows[1]["accuracy"]  # averaging noisy walks helps


def test_per_child_gain_is_none_with_one_walk_per_subject() -> None:
    labels, probs = _set(20)
    assert per_child_gain(labels, probs, [str(i) for i in range(20)], 0.5) is None
