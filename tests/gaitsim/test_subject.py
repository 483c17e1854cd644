"""Severity-to-label mapping and subject sampling."""

import numpy as np
import pytest

from gaitcontract.spec import NEGATIVE, NEUTRAL, POSITIVE
from gaitsim import SimConfigError, label_for_severity
from gaitsim.subject import Posture, sample_subject, severity_for_label


@pytest.mark.parametrize(
    ("cobb", "label"),
    [
        (0.0, NEGATIVE),
        (9.99, NEGATIVE),
        (10.0, NEUTRAL),
        (15.0, NEUTRAL),
        (20.0, NEUTRAL),
        (20.01, POSITIVE),
        (45.0, POSITIVE),
    ],
)
def test_default_mapping_boundaries(cobb, label):
    assert label_for_severity(cobb) == label


def test_mapping_is_configurable():
    assert label_for_severity(12.0, thresholds=(15.0, 25.0)) == NEGATIVE
    assert label_for_severity(25.0, thresholds=(15.0, 25.0)) == NEUTRAL
    assert label_for_severity(26.0, thresholds=(15.0, 25.0)) == POSITIVE


@pytest.mark.parametrize("thresholds", [(20.0, 10.0), (0.0, 10.0), (10.0, 50.0)])
def test_bad_thresholds_are_refused(thresholds):
    with pytest.raises(SimConfigError, match="thresholds"):
        label_for_severity(5.0, thresholds)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_severity_is_refused(bad):
    with pytest.raises(SimConfigError):
        label_for_severity(bad)


@pytest.mark.parametrize("label", [NEGATIVE, NEUTRAL, POSITIVE])
def test_sampled_severity_maps_back_to_its_label(label):
    rng = np.random.default_rng(1)
    for _ in range(200):
        assert label_for_severity(severity_for_label(rng, label)) == label


def test_subjects_stay_in_documented_ranges():
    rng = np.random.default_rng(2)
    subjects = [sample_subject(rng) for _ in range(300)]
    assert all(1.25 <= s.height_m <= 1.85 for s in subjects)
    assert all(90 <= s.cadence_spm <= 130 for s in subjects)
    assert all(0.8 <= s.speed_mps <= 1.5 for s in subjects)
    # negatives keep small natural asymmetries: the task must not be trivial
    tilts = [abs(s.posture.natural_shoulder_tilt_deg) for s in subjects]
    assert np.mean(tilts) > 0.5
    assert {s.posture.curve_type for s in subjects} == {"thoracic", "thoracolumbar", "double"}


def test_posture_validates():
    with pytest.raises(SimConfigError, match="curve type"):
        Posture(10.0, "lumbar-s", 1, 0.5)
    with pytest.raises(SimConfigError, match="side"):
        Posture(10.0, "thoracic", 0, 0.5)
