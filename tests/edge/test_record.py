"""record_walks writer: the npz format calibration reads, atomic, and refusing bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from edge.walks.record import RecordError, read_walk, record_walk


def test_round_trip_has_the_calibration_format(tmp_path):
    sil = (np.random.default_rng(0).random((5, 64, 44)) > 0.5).astype(np.uint8) * 255
    ts = np.arange(5, dtype=np.float64) / 30
    path = record_walk(
        tmp_path / "walks",
        "walk-1",
        sil,
        ts,
        {"outcome": "retake", "probs": None, "quality": {"frames_kept": 5}},
    )
    assert path == tmp_path / "walks" / "walk-1.npz"
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"silhouettes", "timestamps", "meta"}
        assert data["silhouettes"].dtype == np.uint8 and data["silhouettes"].shape == (5, 64, 44)
        assert data["timestamps"].dtype == np.float64
        assert data["meta"].shape == ()
        meta = json.loads(str(data["meta"]))
    assert meta == {
        "walk_id": "walk-1",
        "outcome": "retake",
        "probs": None,
        "quality": {"frames_kept": 5},
    }
    sil2, ts2, meta2 = read_walk(path)
    np.testing.assert_array_equal(sil2, sil)
    np.testing.assert_array_equal(ts2, ts)
    assert meta2 == meta
    assert [p.name for p in (tmp_path / "walks").iterdir()] == ["walk-1.npz"]  # no temp file left


@pytest.mark.parametrize(
    ("walk_id", "sil", "ts", "message"),
    [
        ("../escape", np.zeros((2, 64, 44), np.uint8), np.zeros(2), "safe file name"),
        ("w", np.zeros((2, 64, 64), np.uint8), np.zeros(2), "uint8 [N, 64, 44]"),
        ("w", np.zeros((2, 64, 44), np.float32), np.zeros(2), "uint8 [N, 64, 44]"),
        ("w", np.zeros((2, 64, 44), np.uint8), np.zeros(3), "timestamps must have shape"),
    ],
)
def test_bad_input_is_refused(tmp_path, walk_id, sil, ts, message):
    with pytest.raises(RecordError, match=re.escape(message)):
        record_walk(tmp_path, walk_id, sil, ts, {})
    assert list(tmp_path.iterdir()) == []
