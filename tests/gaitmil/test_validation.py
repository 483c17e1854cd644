"""Temperature scaling and early-stopping comparisons on validation walks."""

from __future__ import annotations

import numpy as np
import pytest

from gaitcontract.errors import ConfigError
from gaitmil.validation import better, choose_referral_threshold, fit_temperature, nll, softmax


def test_fit_temperature_recovers_the_overconfidence():
    """Labels drawn from softmax(z); logits handed over as 3 z: the fitted T is about 3."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (6000, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(z)])
    t = fit_temperature(labels, 3.0 * z)
    assert 2.6 < t < 3.4
    assert nll(labels, 3.0 * z, t) < nll(labels, 3.0 * z)


def test_better_prefers_accuracy_then_nll():
    a = {"val_accuracy": 0.7, "val_nll": 0.8}
    assert better(a, None)
    assert better({"val_accuracy": 0.71, "val_nll": 2.0}, a)
    assert better({"val_accuracy": 0.7, "val_nll": 0.7}, a)
    assert not better({"val_accuracy": 0.7, "val_nll": 0.9}, a)


def test_threshold_needs_referable_validation_walks():
    probs = softmax(np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="val-fraction"):
        choose_referral_threshold(np.zeros(4, np.int64), probs, 0.95)
