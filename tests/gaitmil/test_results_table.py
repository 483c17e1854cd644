"""Point metrics, subject-level bootstrap intervals and fold summaries of the reproduction table."""

from __future__ import annotations

import numpy as np
import pytest

from gaitmil.metrics import summarize
from gaitmil.results_table import (
    COLUMNS,
    bootstrap_intervals,
    fold_summary,
    markdown_rows,
    point_metrics,
)


def _data(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 2.0 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


def test_point_metrics_agree_with_gaitmil_metrics():
    labels, probs = _data()
    p = point_metrics(labels, probs, 0.4)
    ref = summarize(labels, probs, 0.4)
    assert p["accuracy"] == pytest.approx(ref["accuracy"])
    assert p["macro_f1"] == pytest.approx(ref["macro"]["f1"])
    for c, r in ref["per_class"].items():
        assert p[f"{c}_sensitivity"] == pytest.approx(r["sensitivity"])
        assert p[f"{c}_specificity"] == pytest.approx(r["specificity"])
    assert p["screening_sensitivity"] == pytest.approx(ref["screening"]["sensitivity"])
    assert p["screening_specificity"] == pytest.approx(ref["screening"]["specificity"])


def test_bootstrap_interval_brackets_the_point_and_narrows_with_more_subjects():
    labels, probs = _data(60)
    small = bootstrap_intervals(labels, probs, np.arange(60), replicates=500)
    p = point_metrics(labels, probs)
    for key in COLUMNS:
        lo, hi = small[key]
        assert lo <= p[key] <= hi, key
    big_labels, big_probs = _data(600, seed=1)
    big = bootstrap_intervals(big_labels, big_probs, np.arange(600), replicates=500)
    assert big["accuracy"][1] - big["accuracy"][0] < small["accuracy"][1] - small["accuracy"][0]


def test_bootstrap_resamples_subjects_not_walks():
    """Two identical walks per subject carry no more information than one: resampled by subject,
    the interval equals that of one walk per subject (resampled by walk it would shrink)."""
    labels, probs = _data(40)
    once = bootstrap_intervals(labels, probs, np.arange(40), replicates=300, seed=3)
    twice = bootstrap_intervals(
        np.repeat(labels, 2),
        np.repeat(probs, 2, 0),
        np.repeat(np.arange(40), 2),
        replicates=300,
        seed=3,
    )
    for key in COLUMNS:
        assert twice[key] == pytest.approx(once[key]), key
    by_walk = bootstrap_intervals(
        np.repeat(labels, 2), np.repeat(probs, 2, 0), np.arange(80), replicates=300
    )
    assert (
        by_walk["accuracy"][1] - by_walk["accuracy"][0] < once["accuracy"][1] - once["accuracy"][0]
    )


def test_fold_summary_and_markdown():
    folds = [point_metrics(*_data(30, seed=s)) for s in range(3)]
    s = fold_summary(folds)
    acc = [f["accuracy"] for f in folds]
    assert s["accuracy"]["mean"] == pytest.approx(np.mean(acc))
    assert s["accuracy"]["sd"] == pytest.approx(np.std(acc, ddof=1))
    assert s["accuracy"]["min"] == min(acc) and s["accuracy"]["folds"] == 3
    labels, probs = _data()
    row = {
        "split": "118",
        "pooling": "mil",
        "walks": 60,
        "point": point_metrics(labels, probs),
        "ci": bootstrap_intervals(labels, probs, np.arange(60), replicates=50),
    }
    lines = markdown_rows([row])
    assert lines[0].startswith("| split | pooling | walks | accuracy") and lines[2].startswith(
        "| 118 | mil | 60 |"
    )
