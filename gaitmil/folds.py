"""What a Scoliosis1K split file allows one to check, and subject-disjoint
K-fold cross-validation on the union of a split's train and test sets.

The split files list folder ids. In the released data each id holds one
sequence, and the files list 1,493 ids: the sequence count, not the 1,050
adolescents the dataset paper reports. So "no id in both TRAIN_SET and
TEST_SET" is what can be checked; whether one child was recorded under two
ids cannot be seen from the files or the silhouettes' folder names, and the
audit says so rather than claiming subject-disjointness it cannot verify.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gaitcontract.errors import DatasetError
from gaitmil.data import read_split, resolve_split, scan_sequences

UNVERIFIABLE = (
    "ids are folder names; the split files cannot show whether two ids are the same child "
    "(the dataset paper reports 1,050 adolescents for 1,493 sequences)"
)


def subject_labels(root: Path, ids: list[str]) -> dict[str, int]:
    """Class index of each id (of its first sequence, as training's validation split takes it)."""
    labels: dict[str, int] = {}
    for seq in scan_sequences(root, ids):
        labels.setdefault(seq.subject, seq.label)
    return labels


def audit_split(root: str | Path, split: str | Path) -> dict:
    """Counts and overlaps of one split: ids per subset, ids in both, repeated ids, sequences per id
    and class counts (from the tree), and what the files cannot tell."""
    root = Path(root)
    path = resolve_split(root, split)
    ids = read_split(path, allow_overlap=True)
    train, test = ids["TRAIN_SET"], ids["TEST_SET"]
    out: dict = {
        "split": path.stem.replace("Scoliosis1K_", ""),
        "file": str(path),
        "train_ids": len(set(train)),
        "test_ids": len(set(test)),
        "ids_in_both": sorted(set(train) & set(test)),
        "repeated_ids": sorted(
            {i for i in train if train.count(i) > 1} | {i for i in test if test.count(i) > 1}
        ),
        "note": UNVERIFIABLE,
    }
    for key, subset in (("train", train), ("test", test)):
        seqs = scan_sequences(root, sorted(set(subset)))
        per_id: dict[str, int] = {}
        for s in seqs:
            per_id[s.subject] = per_id.get(s.subject, 0) + 1
        out[f"{key}_sequences"] = len(seqs)
        out[f"{key}_ids_with_several_sequences"] = sum(n > 1 for n in per_id.values())
        out[f"{key}_class_counts"] = np.bincount([s.label for s in seqs], minlength=3).tolist()
    return out


def shared_test_ids(root: str | Path, splits: list[str]) -> dict[str, int]:
    """Ids shared by the TEST_SETs of every pair of splits ('112&118': n): results on different
    splits are measured on different test walks."""
    root = Path(root)
    tests = {
        s: set(read_split(resolve_split(root, s), allow_overlap=True)["TEST_SET"]) for s in splits
    }
    return {
        f"{a}&{b}": len(tests[a] & tests[b]) for i, a in enumerate(splits) for b in splits[i + 1 :]
    }


def kfold_splits(
    root: str | Path, split: str | Path, k: int, seed: int = 0
) -> list[dict[str, list[str]]]:
    """K subject-disjoint folds over TRAIN_SET + TEST_SET of `split`, stratified by class: fold i
    tests on its ids and trains on the others. Every id is tested exactly once."""
    root = Path(root)
    ids = read_split(resolve_split(root, split), allow_overlap=True)
    union = sorted(set(ids["TRAIN_SET"]) | set(ids["TEST_SET"]))
    if k < 2:
        raise DatasetError(f"--folds {k}: cross-validation needs at least 2 folds")
    if k > len(union):
        raise DatasetError(f"--folds {k}: the split holds only {len(union)} ids")
    labels = subject_labels(root, union)
    rng = np.random.default_rng([seed, 0xF01D])
    folds: list[list[str]] = [[] for _ in range(k)]
    offset = 0
    for label in sorted(set(labels.values())):
        members = sorted(i for i in union if labels[i] == label)
        for j, pick in enumerate(rng.permutation(len(members))):
            folds[(offset + j) % k].append(members[pick])
        offset += len(members)  # the next class continues the round robin: fold sizes stay even
    out = []
    for i in range(k):
        test = sorted(folds[i])
        held = set(test)
        out.append({"TRAIN_SET": [s for s in union if s not in held], "TEST_SET": test})
    return out


def write_fold_files(
    root: str | Path, split: str | Path, k: int, out_dir: str | Path, seed: int = 0
) -> list[Path]:
    """Write Scoliosis1K_<split>_fold<i>of<k>.json files (usable as --split PATH) and return them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = Path(str(split)).stem.replace("Scoliosis1K_", "")
    paths = []
    for i, fold in enumerate(kfold_splits(root, split, k, seed)):
        path = out_dir / f"Scoliosis1K_{name}_fold{i}of{k}.json"
        path.write_text(json.dumps(fold, indent=1))
        paths.append(path)
    return paths
