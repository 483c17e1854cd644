"""Bootstrap intervals, calibration error and school-population figures of the model card."""

from __future__ import annotations

import numpy as np
import pytest

from gaitmil.screening_report import bootstrap, calibration, plot_reliability, school_population


def _probs(referral: np.ndarray) -> np.ndarray:
    """3-class probs whose P(not negative) is `referral`, split evenly over neutral and positive."""
    return np.stack([1 - referral, referral / 2, referral / 2], 1)


def test_school_population_follows_bayes():
    out = school_population(0.95, 0.80, prevalence=0.025)
    assert out["referral_rate"] == pytest.approx(0.95 * 0.025 + 0.20 * 0.975)
    assert out["ppv"] == pytest.approx(0.95 * 0.025 / (0.95 * 0.025 + 0.20 * 0.975))
    assert school_population(1.0, 1.0, 0.03)["referral_rate"] == pytest.approx(0.03)
    with pytest.raises(ValueError):
        school_population(0.9, 0.9, 0.0)


def test_bootstrap_intervals_hold_the_point_and_resample_subjects():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    referral = np.clip(np.where(labels > 0, 0.7, 0.3) + rng.normal(0, 0.2, 120), 0, 1)
    subjects = np.repeat(np.arange(60), 2)  # two walks per child
    out = bootstrap(labels, _probs(referral), 0.5, subjects, samples=300, seed=1)
    assert out["resampled"] == "subjects" and out["samples"] == 300
    for key, f in out["figures"].items():
        assert f["low"] <= f["value"] <= f["high"], key
        assert f["samples_used"] == 300
    s = out["figures"]["sensitivity"]
    assert 0 < s["high"] - s["low"] < 0.5
    again = bootstrap(labels, _probs(referral), 0.5, subjects, samples=300, seed=1)
    assert again == out  # seeded


def test_calibration_error_is_small_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(2)
    referral = rng.uniform(0, 1, 20000)
    labels = np.where(rng.uniform(0, 1, 20000) < referral, 2, 0)  # truly P(not negative) = referral
    good = calibration(labels, _probs(referral))
    assert good["ece_referral"] < 0.02
    sharp = calibration(labels, _probs((referral > 0.5).astype(float) * 0.999 + 0.0005))
    assert sharp["ece_referral"] > 0.15
    assert sum(b["count"] for b in good["referral"]) == 20000


def test_reliability_png(tmp_path):
    labels = np.array([0, 1, 2, 0])
    probs = _probs(np.array([0.1, 0.8, 0.9, 0.4]))
    png = plot_reliability({"kiosk path": calibration(labels, probs)}, tmp_path / "r.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
