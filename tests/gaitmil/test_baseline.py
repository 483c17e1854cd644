"""gaitmil.baseline: the mean-silhouette yardstick learns a separable problem and nothing from shuffled labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gaitcontract.errors import GaitMILError
from gaitmil import baseline
from tests.gaitmil.synth import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("synth"), per_class_train=16, per_class_test=8, frames=16
    )


def test_gait_energy_is_the_pooled_mean():
    walk = np.zeros((2, 64, 64), np.uint8)
    walk[0, :2, :2] = 255
    energy = baseline.gait_energy(walk)
    assert energy.shape == (1024,) and energy[0] == pytest.approx(0.5) and energy[1:].sum() == 0


def test_separable_walks_are_classified_and_shuffled_labels_are_not(dataset):
    train = baseline.load_walks(dataset, "118", "TRAIN_SET")
    test = baseline.load_walks(dataset, "118", "TEST_SET")
    strength, _ = baseline.choose_strength(train, 0.25, seed=0)
    assert (
        baseline.RidgeClassifier(strength).fit(train).predict(test) == test.labels
    ).mean() >= 0.8
    # the tilt is in the image, not in shuffled labels: over five shuffles about chance (1/3), far below 0.8
    shuffled_accuracy = [
        (
            baseline.RidgeClassifier(strength)
            .fit(
                baseline.Walks(
                    train.features,
                    np.random.default_rng(k).permutation(train.labels),
                    train.views,
                    train.subjects,
                )
            )
            .predict(test)
            == test.labels
        ).mean()
        for k in range(5)
    ]
    assert np.mean(shuffled_accuracy) < 0.55


def test_a_view_without_training_walks_is_named():
    walks = baseline.Walks(
        np.zeros((3, 1024), np.float32),
        np.array([0, 1, 2]),
        np.array(["000_180"] * 3),
        np.array(["a", "b", "c"]),
    )
    other = baseline.Walks(
        walks.features[:1], walks.labels[:1], np.array(["090_090"]), walks.subjects[:1]
    )
    with pytest.raises(GaitMILError, match="090_090"):
        baseline.RidgeClassifier(1.0).fit(walks).predict(other)


def test_cli_prints_and_writes_figures(dataset, tmp_path, capsys):
    out = tmp_path / "baseline.json"
    assert (
        baseline.main(
            [
                "--data",
                str(dataset),
                "--split",
                "118",
                "--test-data",
                str(dataset),
                "--test-split",
                "118",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report == json.loads(capsys.readouterr().out)
    assert report["test_walks"] == 24 and report["strength"] in baseline.STRENGTHS
    low, high = report["ci95"]["accuracy"]
    assert low <= report["accuracy"] <= high and "not a screening figure" in report["note"]
    low, high = report["ci95"]["screening_auc"]
    assert low <= report["screening_auc"] <= high and report["features"] == "gei"


def test_the_profile_is_blind_to_the_side_and_sees_a_shift():
    walk = np.zeros((3, 64, 64), np.uint8)
    walk[:, 8:60, 26:38] = 255
    still = baseline.lateral_profile(walk)
    assert still.shape == (128,) and np.abs(still).max() < 1e-5
    walk[:, 8:32] = np.roll(walk[:, 8:32], 2, axis=2)  # the trunk 2 px to one side
    shifted = baseline.lateral_profile(walk)
    assert shifted[8:32].min() > 0.5
    np.testing.assert_allclose(
        baseline.lateral_profile(walk[:, :, ::-1].copy()), shifted, atol=1e-5
    )


def test_the_profile_ranks_walks_whose_rows_carry_the_class(tmp_path):
    """Synthetic walks whose trunk sits sideways by the class: the profile ridge ranks them, the
    screening AUC and its interval say so; the same walks with shuffled labels do not rank."""
    rng = np.random.default_rng(0)

    def walks(labels):
        out = []
        for label in labels:
            w = np.zeros((4, 64, 64), np.uint8)
            w[:, 8:60, 26:38] = 255
            w[:, 8:32] = np.roll(w[:, 8:32], int(label) + int(rng.integers(0, 2)), axis=2)
            out.append(baseline.lateral_profile(w))
        return np.stack(out)

    labels = np.repeat([0, 1, 2], 20)
    views = np.array(["000_180"] * len(labels))
    train = baseline.Walks(walks(labels), labels, views, np.arange(len(labels)).astype(str))
    test = baseline.Walks(walks(labels), labels, views, np.arange(len(labels)).astype(str))
    scores = baseline.RidgeClassifier(1.0).fit(train).scores(test)
    auc, (low, high) = baseline.screening_auc(labels, scores, test.subjects, seed=0)
    assert auc > 0.9 and low <= auc <= high
    shuffled = baseline.Walks(train.features, rng.permutation(labels), views, train.subjects)
    noise = baseline.RidgeClassifier(1.0).fit(shuffled).scores(test)
    assert baseline.screening_auc(labels, noise, test.subjects, seed=0)[0] < 0.8
