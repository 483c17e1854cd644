"""Mutual information between phase bags and the simulator's true gait phase."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gaitmil.phase_info import entropy, main, mutual_information, phase_bins
from gaitsim.dataset import build_dataset


def test_mutual_information_of_known_label_pairs():
    a = np.repeat(np.arange(4), 48)
    assert mutual_information(a, a) == pytest.approx(2.0)
    assert entropy(a) == pytest.approx(2.0)
    b = np.tile(np.arange(4), 48)  # every pairing equally often: independent
    assert mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)
    # a coarser copy carries exactly its own entropy
    assert mutual_information(a, a // 2) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mutual_information(a, b[:-1])


def test_phase_bins_wrap_the_cycle():
    assert phase_bins(np.array([0.0, 0.124, 0.125, 0.99]), 8).tolist() == [0, 0, 1, 7]


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("phase_sim")
    build_dataset(
        root, walks=14, seed=5, ratio="1:1:2", view="mixed", frames_per_seq=40, test_fraction=0.4
    )
    return root


@pytest.mark.parametrize("kind", ["walk_residual", "appearance"])
def test_reports_bits_within_their_bounds(sim_root, tmp_path, kind, capsys):
    out = tmp_path / "mi.json"
    assert main(["--data", str(sim_root), "--phase-features", kind, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["phase_features"] == kind and result["walks"] > 0
    assert (
        0
        <= result["mi_phase_bits"]
        <= min(result["bag_entropy_bits"], result["phase_entropy_bits"]) + 1e-9
    )
    assert result["bag_entropy_bits"] <= 2.0 + 1e-9  # 4 bags
    assert "I(bag; true phase" in capsys.readouterr().out


def test_dataset_without_phase_truth_is_refused_with_the_fix(sim_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "old"
    shutil.copytree(sim_root, root)
    truth = json.loads((root / "truth.json").read_text())
    for entry in truth["sequences"].values():
        del entry["phase"]
    (root / "truth.json").write_text(json.dumps(truth))
    assert main(["--data", str(root)]) == 2
    assert "regenerate the dataset" in capsys.readouterr().err
