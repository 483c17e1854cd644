"""Split audit and subject-disjoint K-fold splits on the fake Scoliosis1K tree."""

from __future__ import annotations

import json

import pytest

from gaitcontract.errors import DatasetError
from gaitmil.data import Scoliosis1K
from gaitmil.folds import (
    audit_split,
    kfold_splits,
    shared_test_ids,
    subject_labels,
    write_fold_files,
)
from tests.gaitmil.synth import write_dataset


@pytest.fixture()
def tree(tmp_path):
    root = write_dataset(tmp_path / "data", per_class_train=4, per_class_test=2, frames=8)
    ids = json.loads((root / "Scoliosis1K_118.json").read_text())
    union = ids["TRAIN_SET"] + ids["TEST_SET"]
    (root / "Scoliosis1K_112.json").write_text(
        json.dumps({"TRAIN_SET": union[::2], "TEST_SET": union[1::2]})
    )
    return root


def test_kfold_is_subject_disjoint_covers_the_union_once_and_is_stratified(tree):
    folds = kfold_splits(tree, "118", k=3, seed=1)
    ids = json.loads((tree / "Scoliosis1K_118.json").read_text())
    union = set(ids["TRAIN_SET"]) | set(ids["TEST_SET"])
    tested = [i for f in folds for i in f["TEST_SET"]]
    assert sorted(tested) == sorted(union)  # every id tested exactly once
    labels = subject_labels(tree, sorted(union))
    for f in folds:
        assert not set(f["TRAIN_SET"]) & set(f["TEST_SET"])
        assert set(f["TRAIN_SET"]) | set(f["TEST_SET"]) == union
        # 6 ids per class over 3 folds: 2 of each class in every test fold
        assert sorted(labels[i] for i in f["TEST_SET"]) == [0, 0, 1, 1, 2, 2]
    assert kfold_splits(tree, "118", k=3, seed=1) == folds
    assert kfold_splits(tree, "118", k=3, seed=2) != folds
    with pytest.raises(DatasetError, match="at least 2"):
        kfold_splits(tree, "118", k=1)


def test_fold_files_load_as_splits(tree, tmp_path):
    paths = write_fold_files(tree, "118", 2, tmp_path / "folds")
    assert [p.name for p in paths] == [
        "Scoliosis1K_118_fold0of2.json",
        "Scoliosis1K_118_fold1of2.json",
    ]
    test = Scoliosis1K(tree, paths[0], "test", frames=None, train_sampling=False)
    train = Scoliosis1K(tree, paths[0], "train", frames=4)
    assert (
        len(test) == 9
        and len(train) == 9
        and not set(test.subject_index) & set(train.subject_index)
    )


def test_audit_reports_counts_overlap_and_what_cannot_be_checked(tree):
    a = audit_split(tree, "118")
    assert (a["train_ids"], a["test_ids"], a["train_sequences"], a["test_sequences"]) == (
        12,
        6,
        12,
        6,
    )
    assert a["ids_in_both"] == [] and a["repeated_ids"] == []
    assert a["train_class_counts"] == [4, 4, 4] and a["test_class_counts"] == [2, 2, 2]
    assert "same child" in a["note"]
    ids = json.loads((tree / "Scoliosis1K_118.json").read_text())
    leaky = {"TRAIN_SET": ids["TRAIN_SET"], "TEST_SET": ids["TEST_SET"] + ids["TRAIN_SET"][:2]}
    (tree / "Scoliosis1K_leak.json").write_text(json.dumps(leaky))
    assert audit_split(tree, "leak")["ids_in_both"] == sorted(ids["TRAIN_SET"][:2])
    assert shared_test_ids(tree, ["118", "112"]) == {
        "118&112": len(
            set(ids["TEST_SET"])
            & set(json.loads((tree / "Scoliosis1K_112.json").read_text())["TEST_SET"])
        )
    }
