"""Calibration sets: hashing, round trip, refusals with reasons."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration.dataset import (
    CalibrationSet,
    build_set,
    class_warnings,
    content_hash,
    load_set,
    save_set,
    stratified_indices,
)
from calibration.errors import CalibrationSetError


def _walks(n=6, t=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, t, 64, 44)) > 0.5).astype(np.uint8) * 255, np.arange(
        n, dtype=np.int64
    ) % 3


def test_hash_changes_with_the_data_and_not_otherwise():
    walks, labels = _walks()
    base = content_hash(walks, labels)
    assert content_hash(walks.copy(), labels.copy()) == base
    assert content_hash(walks, labels) == base
    changed = walks.copy()
    changed[2, 3, 10, 10] ^= 255
    assert content_hash(changed, labels) != base
    relabelled = labels.copy()
    relabelled[0] = 2
    assert content_hash(walks, relabelled) != base


def test_round_trip(tmp_path):
    walks, labels = _walks()
    calib = CalibrationSet(walks, labels, ["a", "b", "c"] * 2, {"kind": "test"})
    npz, described = save_set(calib, tmp_path / "calib.npz")
    again = load_set(npz, expected_shape=(8, 64, 44))
    assert again.content_hash() == calib.content_hash()
    assert again.strata == calib.strata and again.source == {"kind": "test"}
    info = json.loads(described.read_text())
    assert info["hash"] == calib.content_hash() and info["count"] == 6
    assert info["classes"] == {"negative": 2, "neutral": 2, "positive": 2}
    assert again.model_input().dtype == np.float32 and again.model_input().max() == 1.0


def test_empty_set_is_refused(tmp_path):
    path = tmp_path / "empty.npz"
    np.savez(path, silhouettes=np.zeros((0, 8, 64, 44), np.uint8))
    with pytest.raises(CalibrationSetError, match="empty"):
        load_set(path)
    with pytest.raises(CalibrationSetError, match="empty"):
        build_set(
            np.zeros((0, 8, 64, 44), np.uint8), np.zeros(0, np.int64), [], 5, 0, {"kind": "test"}
        )


def test_shape_mismatch_names_both_shapes(tmp_path):
    walks, labels = _walks(t=8)
    npz, _ = save_set(CalibrationSet(walks, labels, ["x"] * 6), tmp_path / "c.npz")
    with pytest.raises(CalibrationSetError, match=r"\[8, 64, 44\].*\[30, 64, 44\]"):
        load_set(npz, expected_shape=(30, 64, 44))


def test_input_name_mismatch(tmp_path):
    walks, _ = _walks()
    path = tmp_path / "c.npz"
    np.savez(path, frames=walks)
    with pytest.raises(CalibrationSetError, match="no array named 'silhouettes'"):
        load_set(path)


@pytest.mark.parametrize(("value", "message"), [(np.nan, "NaN"), (1.5, "outside")])
def test_bad_values_are_refused_with_where(tmp_path, value, message):
    walks = np.zeros((4, 8, 64, 44), np.float32)
    walks[2, 5, 1, 1] = value
    path = tmp_path / "c.npz"
    np.savez(path, silhouettes=walks)
    with pytest.raises(CalibrationSetError, match=rf"{message}.*walk 2 frame 5"):
        load_set(path)


def test_missing_file(tmp_path):
    with pytest.raises(CalibrationSetError, match="calibration collect"):
        load_set(tmp_path / "none.npz")


def test_few_walks_per_class_warns_with_counts():
    assert class_warnings(np.array([0] * 25 + [1] * 25 + [2] * 25)) == []
    warning = class_warnings(np.array([0] * 25 + [1] * 3 + [2] * 25))
    assert len(warning) == 1 and "'neutral': 3" in warning[0]


def test_stratified_selection_is_balanced_and_deterministic():
    strata = ["a"] * 50 + ["b"] * 10 + ["c"] * 40
    index = stratified_indices(strata, 30, seed=1)
    picked = [strata[i] for i in index]
    assert len(index) == 30 and len(set(index.tolist())) == 30
    assert picked.count("a") == picked.count("b") == picked.count("c") == 10
    assert np.array_equal(index, stratified_indices(strata, 30, seed=1))
    assert len(stratified_indices(strata, 500)) == 100  # no more than there is
