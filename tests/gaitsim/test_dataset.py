"""The Scoliosis1K-layout dataset writer, read back through gaitmil's loader."""

import json
import pickle

import numpy as np
import pytest

from gaitsim import SimConfigError
from gaitsim.dataset import build_dataset, main, parse_ratio


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    summary = build_dataset(
        root, walks=16, seed=3, ratio="1:1:2", view="mixed", frames_per_seq=60, workers=2
    )
    return root, summary


def test_layout_and_files(dataset):
    root, summary = dataset
    pkls = sorted(root.glob("*/*/*/*.pkl"))
    assert len(pkls) == summary["sequences"] == 16
    for p in pkls:
        sid, cls, view = p.parts[-4:-1]
        assert len(sid) == 5 and sid.isdigit()
        assert cls in ("negative", "neutral", "positive")
        assert p.name == f"{view}.pkl" and view.split("_")[1] in ("180", "000")
        with open(p, "rb") as fh:
            arr = pickle.load(fh)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[1:] == (64, 64)
        assert 30 <= arr.shape[0] <= 60


def test_split_is_subject_disjoint_and_subjects_repeat(dataset):
    root, summary = dataset
    split = json.loads((root / "Scoliosis1K_112.json").read_text())
    train, test = set(split["TRAIN_SET"]), set(split["TEST_SET"])
    assert train and test and not train & test
    assert all(isinstance(i, str) for i in split["TRAIN_SET"] + split["TEST_SET"])
    on_disk = {p.name for p in root.iterdir() if p.is_dir()}
    assert train | test == on_disk
    assert summary["subjects"] < summary["sequences"]  # subjects walk more than once


def test_truth_sidecar_matches_the_files(dataset):
    root, _ = dataset
    truth = json.loads((root / "truth.json").read_text())
    assert "not a screening tool" in truth["note"]
    seqs = truth["sequences"]
    assert len(seqs) == 16
    for rel, entry in seqs.items():
        assert (root / rel / f"{rel.split('/')[-1]}.pkl").is_file()
        assert entry["class"] == rel.split("/")[1]
        assert {"severity", "curve_type", "side", "subject"} <= set(entry)
        assert entry["subject"]["posture"]["severity"] == entry["severity"]
        # one true stride phase per stored frame, in [0, 1), advancing at the walker's cadence
        with open(root / rel / f"{rel.split('/')[-1]}.pkl", "rb") as fh:
            frames = len(pickle.load(fh))
        phase = np.asarray(entry["phase"])
        assert phase.shape == (frames,) and (phase >= 0).all() and (phase < 1).all()
        steps = np.diff(phase) % 1.0
        assert 0 < np.median(steps) < 0.5 and len(np.unique(np.round(phase, 2))) > 4
    # ratio 1:1:2 (positive:neutral:negative) by subject: negatives are the largest class
    counts = {
        c: sum(e["class"] == c for e in seqs.values()) for c in ("negative", "neutral", "positive")
    }
    assert counts["negative"] >= max(counts["neutral"], counts["positive"])


def test_dataset_loads_through_gaitmil_loader(dataset):
    root, _ = dataset
    from gaitmil.data import Scoliosis1K  # the model engineer's loader: the contract under test

    truth = json.loads((root / "truth.json").read_text())["sequences"]
    for subset in ("train", "test"):
        ds = Scoliosis1K(root, "112", subset, frames=30, train_sampling=False)
        assert len(ds) > 0
        sil, label, subject, info = ds[0]
        assert tuple(sil.shape) == (30, 64, 44)
        assert 0.0 <= float(sil.min()) and float(sil.max()) <= 1.0 and float(sil.mean()) > 0.1
        rel = f"{subject}/{info['class']}/{info['view']}"
        assert truth[rel]["label"] == label


def test_generation_is_deterministic_and_independent_of_workers(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    build_dataset(one, walks=4, seed=9, frames_per_seq=40, workers=1)
    build_dataset(two, walks=4, seed=9, frames_per_seq=40, workers=2)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)


def test_ratio_parsing_and_cli_errors(tmp_path, capsys):
    assert parse_ratio("1:1:2") == (2, 1, 1)  # returned as negative, neutral, positive
    with pytest.raises(SimConfigError):
        parse_ratio("1-1-2")
    assert main(["--walks", "0", "--out", str(tmp_path)]) == 2
    assert "walks" in capsys.readouterr().err
