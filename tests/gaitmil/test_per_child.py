"""Several walks per child (issue 25 item 4): the rule chosen on validation children, the
per-child rows with intervals over children, and the screening targets, on synthetic scores."""

from __future__ import annotations

import numpy as np
import pytest

from gaitmil.per_child import (
    KIOSK_CHILD_RULE,
    choose_child_rule,
    per_child_gain,
    rescreen_decisions,
    screening_targets,
)


def _probs(p_not_negative: np.ndarray) -> np.ndarray:
    p = np.asarray(p_not_negative, np.float64)
    return np.stack([1 - p, p / 2, p / 2], axis=1)


def _children(n: int, walks: int, noise: float, seed: int = 1, spike: float = 0.0):
    """n children (a third not negative) walking `walks` times; `spike`: a negative child's walks
    sometimes score high (a stumble), which the max rule refers and the mean forgives."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    labels, scores, subjects = [], [], []
    for c in range(n):
        for _ in range(walks):
            centre = 0.3 if truth[c] == 0 else 0.7
            s = centre + rng.normal(0, noise)
            if truth[c] == 0 and rng.random() < spike:
                s = 0.6  # the mean with a 0.3 walk stays below 0.5
            labels.append(truth[c])
            scores.append(np.clip(s, 0.001, 0.999))
            subjects.append(f"{c:05d}")
    return np.array(labels), _probs(np.array(scores)), subjects


def test_two_walks_beat_one_on_noisy_walks_with_intervals_over_children() -> None:
    labels, probs, subjects = _children(300, 2, noise=0.25)
    gain = per_child_gain(labels, probs, subjects, 0.5, bootstrap_samples=200)
    assert gain is not None and gain["children"] == 300 and gain["walks_each"] == 2
    assert gain["resampled"] == "children"
    # data walked twice (sim://...&repeats=2): rows for 1 and 2 walks, the 3-walk row says why not
    assert [r["walks"] for r in gain["rows"]] == [1, 2]
    assert gain["missing"] == ["3 walks: no held-out child walked 3 times"]
    one, two = gain["rows"]
    assert two["accuracy"] > one["accuracy"] + 0.03  # averaging two noisy walks helps
    ci = two["intervals_95"]["accuracy"]
    assert ci["low"] < two["accuracy"] < ci["high"] and ci["high"] - ci["low"] < 0.2
    g = two["gain_over_one_walk"]["accuracy"]
    assert g["value"] == pytest.approx(two["accuracy"] - one["accuracy"], abs=1e-3)
    assert g["low"] > 0  # paired resamples: the gain is clear of zero


def test_validation_children_choose_the_rule_and_a_tie_keeps_the_kiosks() -> None:
    # negative children stumble on one walk now and then: the max refers them, the mean does not
    labels, probs, subjects = _children(300, 2, noise=0.05, spike=0.3)
    rule = choose_child_rule(labels, probs, subjects, 0.5)
    assert rule is not None and rule["rule"] == KIOSK_CHILD_RULE and rule["children"] == 300
    cands = rule["candidates"]
    assert cands["mean_p_not_negative"]["specificity"] > cands["max_p_not_negative"]["specificity"]
    # a child's walks that agree give both rules the same decisions: the kiosk's rule stays
    labels, probs, subjects = _children(100, 2, noise=0.0)
    assert choose_child_rule(labels, probs, subjects, 0.5)["rule"] == KIOSK_CHILD_RULE
    # one walk per child chooses nothing
    assert choose_child_rule(labels[::2], probs[::2], subjects[::2], 0.5) is None


def test_max_rule_when_the_not_negative_children_show_it_on_one_walk_only() -> None:
    rng = np.random.default_rng(3)
    labels, scores, subjects = [], [], []
    for c in range(200):
        label = int(rng.integers(0, 3))
        if label:  # one clear walk, one that looks negative
            pair = [0.8, 0.2]
        else:
            pair = [0.2, 0.2]
        for s in pair:
            labels.append(label)
            scores.append(s)
            subjects.append(str(c))
    rule = choose_child_rule(np.array(labels), _probs(np.array(scores)), subjects, 0.55)
    assert rule is not None and rule["rule"] == "max_p_not_negative"


def test_rescreen_sends_the_uncertain_walk_again_and_the_next_one_decides() -> None:
    scores = [np.array([0.49, 0.9]), np.array([0.2, 0.9]), np.array([0.5, 0.48])]
    referred, again, unresolved = rescreen_decisions(scores, 0.5, (0.45, 0.55))
    assert referred.tolist() == [True, False, True]  # the last: both walks in the band
    assert again.tolist() == [True, False, True]
    assert unresolved.tolist() == [False, False, True]


def test_screening_targets_report_every_figure_with_an_interval() -> None:
    labels, probs, subjects = _children(200, 2, noise=0.2, seed=5)
    t = screening_targets(
        labels, probs, subjects, 0.5, band=(0.45, 0.55), bootstrap_samples=100, seed=0
    )
    assert t["children"] == 200 and t["walks"] == 400 and t["resampled"] == "children"
    for key in ("one_walk_auc", "one_walk_specificity_at_95_sensitivity", "ece_referral"):
        f = t[key]
        assert f["low"] <= f["value"] <= f["high"], key
    assert 0.8 < t["one_walk_auc"]["value"] < 1.0  # centres 0.3 and 0.7, noise 0.2
    two = t["two_walk"]
    assert two["children"] == 200 and two["accuracy"]["value"] > 0.8
    band = t["rescreen"]
    assert band["band"] == [0.45, 0.55]
    assert 0 < band["rescreen_rate"]["value"] < 0.5
    # at 2.5 % prevalence the referral rate is mostly the false referrals of negative children
    spec = band["specificity"]["value"]
    expected = 0.025 * band["sensitivity"]["value"] + 0.975 * (1 - spec)
    assert band["referral_rate"]["value"] == pytest.approx(expected, abs=1e-3)
    # one walk per child: no two-walk figures, the rest still reported
    single = screening_targets(labels[::2], probs[::2], subjects[::2], 0.5, bootstrap_samples=20)
    assert single["two_walk"] is None and single["rescreen"] is None
    assert single["one_walk_auc"]["value"] is not None


def test_auc_is_one_for_separated_scores_and_a_half_for_ties() -> None:
    labels = np.array([0, 0, 1, 2])
    subjects = ["a", "b", "c", "d"]
    high = screening_targets(
        labels, _probs(np.array([0.1, 0.2, 0.8, 0.9])), subjects, 0.5, bootstrap_samples=0
    )
    assert high["one_walk_auc"]["value"] == 1.0
    tied = screening_targets(
        labels, _probs(np.array([0.5, 0.5, 0.5, 0.5])), subjects, 0.5, bootstrap_samples=0
    )
    assert tied["one_walk_auc"]["value"] == 0.5
