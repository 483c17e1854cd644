"""calibration collect: simulator, Scoliosis1K-layout dataset and kiosk recordings."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from calibration.__main__ import main
from calibration.collect import collect_dataset, collect_sim, collect_walks, parse_sim_spec
from calibration.dataset import load_set
from calibration.errors import CalibrationSetError
from gaitcontract import spec


def test_sim_spec_parsing():
    assert parse_sim_spec("default")["ratio"] == (1, 1, 1)
    parsed = parse_sim_spec("seed=4,view=side,ratio=2:1:1")
    assert parsed["seed"] == 4 and parsed["view"] == "side" and parsed["ratio"] == (2, 1, 1)
    with pytest.raises(CalibrationSetError, match="KEY=VALUE"):
        parse_sim_spec("colour=blue")
    with pytest.raises(CalibrationSetError, match="ratio"):
        parse_sim_spec("ratio=1:1")


def test_sim_set_is_stratified_by_class_and_view():
    calib = collect_sim("seed=5,oversample=2", count=9, frames=8)
    assert calib.silhouettes.shape == (9, 8, 64, 44) and calib.silhouettes.dtype == np.uint8
    assert sorted(set(calib.labels.tolist())) == [0, 1, 2]
    assert all("/" in s for s in calib.strata)
    assert calib.warnings and "fewer than 20" in calib.warnings[0]
    assert (
        calib.content_hash() == collect_sim("seed=5,oversample=2", count=9, frames=8).content_hash()
    )


def _record(directory, walk_id, frames, probs, site="school-1"):
    """A kiosk recording in edge.walks.record's format, written here (record_walks on)."""
    rng = np.random.default_rng(len(walk_id) + frames)
    silhouettes = (rng.random((frames, 64, 44)) > 0.6).astype(np.uint8) * 255
    meta = {
        "walk_id": walk_id,
        "kiosk_id": "k1",
        "site_id": site,
        "quality": {"frames_kept": frames},
        "model_id": "gaitmil-tiny-x",
        "probs": probs,
        "outcome": "no_referral_indicated",
    }
    np.savez_compressed(
        directory / f"{walk_id}.npz",
        silhouettes=silhouettes,
        timestamps=np.arange(frames) / 30.0,
        meta=np.array(json.dumps(meta)),
    )


def test_site_recordings_stratified_by_prediction(tmp_path):
    for i in range(6):
        probs = (
            np.eye(3)[i % 3].tolist()
            if i < 5
            else {"negative": 0.1, "neutral": 0.2, "positive": 0.7}
        )
        _record(tmp_path, f"walk-{i}", 40 + i, probs)
    calib = collect_walks(tmp_path, count=6, frames=16)
    assert calib.silhouettes.shape == (6, 16, 64, 44)
    assert (calib.labels == -1).all()  # no labels on site
    assert sorted(set(calib.strata)) == [
        "predicted-negative",
        "predicted-neutral",
        "predicted-positive",
    ]
    assert any("predicted" in w for w in calib.warnings)
    assert calib.source["sites"] == ["school-1"]


def test_site_recordings_refusals(tmp_path):
    with pytest.raises(CalibrationSetError, match="not a folder"):
        collect_walks(tmp_path / "none", 4)
    with pytest.raises(CalibrationSetError, match="empty calibration set"):
        collect_walks(tmp_path, 4)
    np.savez(tmp_path / "bad.npz", silhouettes=np.zeros((5, 64, 64), np.uint8), meta=np.array("{}"))
    with pytest.raises(CalibrationSetError, match="expected uint8"):
        collect_walks(tmp_path, 4)


def test_dataset_layout(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"{i:05d}" for i in range(6)]
    for i, sid in enumerate(ids):
        name = spec.CLASSES[i % 3]
        folder = tmp_path / sid / name / "000_180"
        folder.mkdir(parents=True)
        seq = np.zeros((20, 64, 64), np.uint8)
        seq[:, 10:60, 25:40] = 255 * (rng.random((20, 50, 15)) > 0.2)
        with open(folder / "000_180.pkl", "wb") as handle:
            pickle.dump(seq, handle)
    (tmp_path / "Scoliosis1K_t.json").write_text(json.dumps({"TRAIN_SET": ids, "TEST_SET": []}))
    calib = collect_dataset(tmp_path, "t", count=6, frames=8)
    assert calib.silhouettes.shape == (6, 8, 64, 44)
    assert sorted(calib.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert set(calib.strata) == {"negative/000_180", "neutral/000_180", "positive/000_180"}


def test_cli_collect_writes_set_and_description(tmp_path, capsys):
    for i in range(3):
        _record(tmp_path, f"w{i}", 30, np.eye(3)[i].tolist())
    out = tmp_path / "out" / "calib.npz"
    assert (
        main(
            [
                "collect",
                "--walks",
                str(tmp_path),
                "--count",
                "3",
                "--frames",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "content hash" in captured.out and "fewer than 20" in captured.err
    assert load_set(out).count == 3 and out.with_suffix(".json").is_file()
    assert (
        main(["collect", "--walks", str(tmp_path / "none"), "--count", "3", "--out", str(out)]) == 2
    )
