"""The Scoliosis1K loader on tiny trees in OpenGait's layout, and its errors."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from gaitcontract.errors import DatasetError
from gaitcontract.spec import CLASS_INDEX
from gaitmil.data import PKBatchSampler, Scoliosis1K, collate, load_pkl


def _tree(root, subjects, frames=12):
    """subjects: {id: (class, view)}; pkl frame t has pixel value t in column 32 (to trace sampling)."""
    for sid, (cls, view) in subjects.items():
        d = root / sid / cls / view
        d.mkdir(parents=True)
        arr = np.zeros((frames, 64, 64), np.uint8)
        arr[:, :, 32] = np.arange(frames, dtype=np.uint8)[:, None] * 10
        arr[:, :, 0] = 255  # column 0 is cut away by the 10-column cut
        with open(d / f"{view}.pkl", "wb") as fh:
            pickle.dump(arr, fh)
    return root


@pytest.fixture
def tree(tmp_path):
    _tree(
        tmp_path,
        {
            "00001": ("positive", "000_180"),
            "00002": ("negative", "000_000"),
            "00003": ("neutral", "000_180"),
        },
    )
    (tmp_path / "Scoliosis1K_118.json").write_text(
        json.dumps({"TRAIN_SET": ["00001", "00002"], "TEST_SET": ["00003"]})
    )
    return tmp_path


def test_loads_train_and_test_subsets(tree):
    train = Scoliosis1K(tree, "118", "train", frames=5)
    assert len(train) == 2
    sil, label, subject, info = train[0]
    assert sil.shape == (5, 64, 44) and sil.dtype == torch.float32
    assert label == CLASS_INDEX["positive"] and subject == "00001"
    assert info["view"] == "000_180" and info["length"] == 12
    assert float(sil.max()) <= 1.0 and float(sil[:, :, 0].max()) == 0.0  # cut removed column 0
    test = Scoliosis1K(tree, "118", "test", frames=None, train_sampling=False)
    sil, label, _, _ = test[0]
    assert sil.shape == (12, 64, 44) and label == CLASS_INDEX["neutral"]
    # all frames, in order: column 32 of the 64-wide image is column 22 after the cut
    np.testing.assert_allclose(sil[:, 0, 22].numpy() * 255, np.arange(12) * 10, atol=1e-3)
    assert train.describe()["class_counts"] == {"negative": 1, "neutral": 0, "positive": 1}


def test_evaluation_sampling_is_even_and_training_sampling_is_seeded(tree):
    ev = Scoliosis1K(tree, "118", "test", frames=4, train_sampling=False)
    frames = (ev[0][0][:, 0, 22].numpy() * 255 / 10).round().astype(int)
    assert frames.tolist() == [1, 4, 7, 10]  # gaitcontract.spec.even_indices(12, 4)
    tr = Scoliosis1K(tree, "118", "train", frames=30)  # longer than the sequence: with replacement
    a, b, c = tr[(0, 7)][0], tr[(0, 7)][0], tr[(0, 8)][0]
    assert a.shape[0] == 30
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_split_as_json_path(tree, tmp_path_factory):
    other = tmp_path_factory.mktemp("splits") / "mine.json"
    other.write_text(json.dumps({"TRAIN_SET": ["00003"], "TEST_SET": []}))
    assert len(Scoliosis1K(tree, other, "train")) == 1
    with pytest.raises(DatasetError, match="TEST_SET is empty"):
        Scoliosis1K(tree, other, "test")


def test_collate_stacks_a_batch(tree):
    ds = Scoliosis1K(tree, "118", "train", frames=6)
    sils, labels, subjects, infos = collate([ds[(0, 1)], ds[(1, 2)]])
    assert (
        sils.shape == (2, 6, 64, 44)
        and labels.tolist() == [2, 0]
        and subjects == ["00001", "00002"]
    )
    assert len(infos) == 2


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_split", r"Scoliosis1K_118.json does not exist"),
        ("bad_json", "not valid JSON"),
        ("no_train_key", "TRAIN_SET must be a list"),
        ("overlap", "in both TRAIN_SET and TEST_SET"),
        ("missing_subject", "subject folders of the split are missing"),
        ("bad_class", "unknown class folder 'scoliotic'"),
        ("no_view", "no view folder"),
        ("no_pkl", "expected 000_180.pkl"),
        ("garbage_pkl", "cannot read the silhouette pkl"),
        ("wrong_shape", r"expected silhouettes \[T, 64, 64\], got \(5, 64, 44\)"),
        ("wrong_dtype", "expected dtype uint8"),
        ("empty_seq", "holds no frames"),
        ("evil_pkl", "not allowed in a silhouette pkl"),
    ],
)
def test_broken_trees_raise_dataset_error_naming_the_problem(tree, breakage, message):
    pkl = tree / "00001" / "positive" / "000_180" / "000_180.pkl"
    split = tree / "Scoliosis1K_118.json"
    if breakage == "no_split":
        split.unlink()
    elif breakage == "bad_json":
        split.write_text("{not json")
    elif breakage == "no_train_key":
        split.write_text(json.dumps({"TEST_SET": []}))
    elif breakage == "overlap":
        split.write_text(json.dumps({"TRAIN_SET": ["00001"], "TEST_SET": ["00001"]}))
    elif breakage == "missing_subject":
        shutil.rmtree(tree / "00002")
    elif breakage == "bad_class":
        (tree / "00001" / "positive").rename(tree / "00001" / "scoliotic")
    elif breakage == "no_view":
        shutil.rmtree(tree / "00001" / "positive" / "000_180")
    elif breakage == "no_pkl":
        pkl.unlink()
    elif breakage == "garbage_pkl":
        pkl.write_bytes(b"this is not a pickle")
    else:
        arr = {
            "wrong_shape": np.zeros((5, 64, 44), np.uint8),
            "wrong_dtype": np.zeros((5, 64, 64), np.float32),
            "empty_seq": np.zeros((0, 64, 64), np.uint8),
        }.get(breakage)
        if breakage == "evil_pkl":
            arr = _Evil()
        pkl.write_bytes(pickle.dumps(arr))
    with pytest.raises(DatasetError, match=message) as info:
        ds = Scoliosis1K(tree, "118", "train", frames=4)
        ds[0]
    if breakage in ("garbage_pkl", "wrong_shape", "evil_pkl"):
        assert str(pkl) in str(info.value)  # says where


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_load_pkl_accepts_a_plain_uint8_array(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(arr))
    np.testing.assert_array_equal(load_pkl(tmp_path / "x.pkl"), arr)


def test_pk_sampler_structure_determinism_and_ranks():
    subjects = ["a", "a", "b", "c", "c", "c", "d"]
    s = PKBatchSampler(subjects, p=2, k=3, seed=5)
    batch = s.batch(0)
    assert len(batch) == 6
    groups = [{subjects[i] for i, _ in batch[j : j + 3]} for j in (0, 3)]
    assert all(len(g) == 1 for g in groups) and groups[0] != groups[1]
    assert PKBatchSampler(subjects, 2, 3, seed=5).batch(0) == batch
    assert s.batch(1) != batch
    resumed = iter(PKBatchSampler(subjects, 2, 3, seed=5, start=1))
    assert next(resumed) == s.batch(1)
    r0 = PKBatchSampler(subjects, 2, 3, seed=5, rank=0, world_size=2).batch(0)
    r1 = PKBatchSampler(subjects, 2, 3, seed=5, rank=1, world_size=2).batch(0)
    assert r0 + r1 == batch
    with pytest.raises(DatasetError, match="divisible"):
        PKBatchSampler(subjects, 3, 2, world_size=2)


def test_validation_subjects_are_stratified_seeded_and_selectable(tmp_path):
    from gaitmil.data import validation_subjects
    from tests.gaitmil.synth import write_dataset

    root = write_dataset(tmp_path / "d", per_class_train=6, per_class_test=2, frames=10)
    whole = Scoliosis1K(root, "118", "train", frames=4)
    val = validation_subjects(whole, 0.34, seed=0)
    assert (
        val == validation_subjects(whole, 0.34, seed=0) != validation_subjects(whole, 0.34, seed=1)
    )
    labels = {s.subject: s.label for s in whole.sequences}
    assert sorted(labels[v] for v in val) == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]  # 2 of the 6 subjects of every class
    part = Scoliosis1K(root, "118", "train", frames=4, subjects=val)
    assert sorted(part.subject_index) == val and part.describe()["part"] == "selected subjects"
    test_ids = json.loads((root / "Scoliosis1K_118.json").read_text())["TEST_SET"]
    with pytest.raises(DatasetError, match="not in TRAIN_SET"):
        Scoliosis1K(root, "118", "train", subjects=test_ids[:1])
    with pytest.raises(DatasetError, match="between 0 and 1"):
        validation_subjects(whole, 1.0, seed=0)
