"""Metrics on hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gaitmil.metrics import (
    accuracy,
    confusion_matrix,
    format_report,
    macro_prf,
    per_class,
    screening,
    summarize,
    threshold_for_sensitivity,
)

# 6 walks; labels negative, negative, negative, neutral, positive, positive
LABELS = np.array([0, 0, 0, 1, 2, 2])
PROBS = np.array(
    [
        [0.8, 0.1, 0.1],  # neg -> neg
        [0.6, 0.3, 0.1],  # neg -> neg (referral score 0.4)
        [0.3, 0.6, 0.1],  # neg -> neutral (referral 0.7)
        [0.5, 0.4, 0.1],  # neutral -> neg (referral 0.5)
        [0.1, 0.2, 0.7],  # pos -> pos (0.9)
        [0.2, 0.7, 0.1],  # pos -> neutral (0.8)
    ]
)


def test_confusion_matrix_and_accuracy():
    cm = confusion_matrix(LABELS, PROBS)
    assert cm.tolist() == [[2, 1, 0], [1, 0, 0], [0, 1, 1]]
    assert accuracy(LABELS, PROBS) == pytest.approx(3 / 6)


def test_one_vs_rest_and_macro():
    rows = per_class(confusion_matrix(LABELS, PROBS))
    neg, neu, pos = rows
    assert neg["sensitivity"] == pytest.approx(2 / 3) and neg["specificity"] == pytest.approx(2 / 3)
    assert neu["sensitivity"] == 0 and neu["specificity"] == pytest.approx(3 / 5)
    assert pos["sensitivity"] == pytest.approx(1 / 2) and pos["specificity"] == 1.0
    assert (
        neg["precision"] == pytest.approx(2 / 3)
        and pos["precision"] == 1.0
        and neu["precision"] == 0.0
    )
    m = macro_prf(confusion_matrix(LABELS, PROBS))
    assert m["recall"] == pytest.approx((2 / 3 + 0 + 1 / 2) / 3)
    assert m["precision"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    f1_pos = 2 * 1 * 0.5 / 1.5
    assert m["f1"] == pytest.approx((2 / 3 + 0 + f1_pos) / 3)


def test_screening_pair_at_thresholds():
    s = screening(LABELS, PROBS, 0.5)
    # referred: scores >= 0.5 -> walks 2 (neg), 3, 4, 5 ; truly referable: 3, 4, 5
    assert (s["tp"], s["fn"], s["fp"], s["tn"]) == (3, 0, 1, 2)
    assert s["sensitivity"] == 1.0 and s["specificity"] == pytest.approx(2 / 3)
    s = screening(LABELS, PROBS, 0.85)
    assert s["sensitivity"] == pytest.approx(1 / 3) and s["specificity"] == 1.0


def test_threshold_for_sensitivity():
    # referable scores 0.5, 0.8, 0.9: 95 % needs all three -> 0.5 ; 60 % allows one miss -> 0.8
    assert threshold_for_sensitivity(LABELS, PROBS, 0.95) == pytest.approx(0.5)
    assert threshold_for_sensitivity(LABELS, PROBS, 0.6) == pytest.approx(0.8)
    assert threshold_for_sensitivity(np.array([0, 0]), PROBS[:2], 0.95) is None
    t = threshold_for_sensitivity(LABELS, PROBS, 0.95)
    assert screening(LABELS, PROBS, t)["sensitivity"] >= 0.95


def test_summarize_and_table():
    report = summarize(LABELS, PROBS, threshold=0.5)
    assert report["count"] == 6 and len(report["sweep"]) == 19
    assert report["per_class"]["positive"]["support"] == 2
    text = format_report(report)
    assert "accuracy:  50.0%" in text and "confusion matrix" in text


def test_missing_class_gives_nan_not_crash():
    rows = per_class(confusion_matrix(np.array([0, 0]), PROBS[:2]))
    assert math.isnan(rows[1]["sensitivity"])
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix(np.array([0, 5]), PROBS[:2])
