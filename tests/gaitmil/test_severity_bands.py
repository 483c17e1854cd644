"""Screening errors along the simulated severity: bands, the boundary margin and the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gaitcontract.errors import DatasetError
from gaitmil.checkpoint import save_checkpoint
from gaitmil.paper import walk_severities
from gaitmil.severity_bands import away_from_boundary, bands, main
from gaitsim.dataset import build_dataset
from tests.gaitmil.conftest import make_model


def test_bands_count_average_and_refer_per_band():
    severity = np.array([1.0, 4.0, 9.0, 10.0, 20.0, 45.0])
    scores = np.array([0.1, 0.3, 0.6, 0.7, 0.5, 1.0])
    out = bands(severity, scores, 0.5, edges=(0.0, 5.0, 10.0, 20.0, 45.0))
    assert [b.walks for b in out] == [2, 1, 1, 2]  # 10 opens [10, 20); 20 and 45 the closed last
    assert out[0].mean_score == pytest.approx(0.2) and out[0].referred == 0.0
    assert out[1].referred == 1.0 and out[3].referred == 1.0
    empty = bands(severity, scores, 0.5, edges=(0.0, 0.5, 45.0))[0]
    assert empty.walks == 0 and np.isnan(empty.mean_score) and np.isnan(empty.referred)


def test_the_margin_leaves_out_walks_near_ten_degrees_on_both_sides():
    severity = np.array([7.4, 7.6, 10.0, 12.4, 12.6])
    assert away_from_boundary(severity, 2.5).tolist() == [True, False, False, False, True]
    assert away_from_boundary(severity, 0.0).all()


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("severity_sim")
    build_dataset(
        root, walks=16, seed=7, ratio="1:1:2", view="mixed", frames_per_seq=40, test_fraction=0.5
    )
    return root


def test_reports_every_test_walk_once_with_the_checkpoint_threshold(
    sim_root, synth_frames, tmp_path, capsys
):
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, make_model(synth_frames), extra={"referral_threshold": 0.4})
    (split,) = sim_root.glob("Scoliosis1K_*.json")  # gaitsim.dataset writes one split
    out = tmp_path / "bands.json"
    code = main(
        [
            "--checkpoint",
            str(ckpt),
            "--data",
            str(sim_root),
            "--split",
            str(split),
            "--json",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["threshold"] == 0.4 and report["threshold_source"] == "checkpoint"
    assert sum(b["walks"] for b in report["bands"]) == report["walks"] > 0
    assert 0.0 <= report["auc_all"] <= 1.0  # the split holds both screening sides
    assert report["walks_away"] <= report["walks"]
    text = capsys.readouterr().out
    assert "mean P(not negative)" in text and "not of screening" in text


def test_data_without_severities_is_refused_with_the_fix(sim_root, tmp_path):
    with pytest.raises(DatasetError, match="simulated dataset"):
        walk_severities(tmp_path, ["a/b/c"])
    root = tmp_path / "old"
    shutil.copytree(sim_root, root)
    truth = json.loads((root / "truth.json").read_text())
    rel = next(iter(truth["sequences"]))
    del truth["sequences"][rel]["severity"]
    (root / "truth.json").write_text(json.dumps(truth))
    with pytest.raises(DatasetError, match="regenerate the dataset"):
        walk_severities(root, [rel])


def test_a_checkpoint_without_threshold_needs_one(sim_root, synth_frames, tmp_path, capsys):
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, make_model(synth_frames))
    assert main(["--checkpoint", str(ckpt), "--data", str(sim_root), "--split", "x"]) == 2
    assert "pass --threshold" in capsys.readouterr().err
