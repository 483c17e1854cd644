"""Scoliosis1K in OpenGait's pkl layout (also written by the simulator).

    root/<5-digit subject id>/<class>/<view>/<view>.pkl   pickled uint8 [T, 64, 64]
    root/Scoliosis1K_<name>.json  {"TRAIN_SET": [ids], "TEST_SET": [ids]}

A data set for a 128x88 model holds [T, 128, 128] canvases instead (OpenGait's 128-px
pretreatment; `python -m edge collect --input-height 128`). The height is read from the data,
or given (`input_height`) and then checked: data of another height are refused, never resized
(64-px silhouettes upsampled to 128 px would hold none of the finer trunk cues).

The pkl files are unpickled with an allow-list (numpy arrays only), so a
tampered file cannot run code.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError(
        "gaitmil's model and training code need PyTorch: "
        "pip install 'gaitmil-edge[train]' (torch==2.13.0)"
    ) from exc
from torch.utils.data import Dataset, Sampler

from gaitcontract.errors import DatasetError
from gaitcontract.silhouette import cut
from gaitcontract.spec import (
    CLASS_INDEX,
    DEFAULT_FRAMES,
    INPUT_RESOLUTIONS,
    add_input_height_argument,
    even_indices,
)

STANDARD_SPLITS = ("112", "114", "118", "1116")
SUBSETS = {"train": "TRAIN_SET", "test": "TEST_SET"}

# what a pickled numpy array needs, in numpy 1.x and 2.x naming
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (
            (module, name) in _ALLOWED_GLOBALS
            or (module == "numpy" and name.endswith("DType"))
            or module == "numpy.dtypes"
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a silhouette pkl")


def load_pkl(path: Path, height: int | None = None) -> np.ndarray:
    """Read one sequence: uint8 [T, 64, 64] or [T, 128, 128]; DatasetError saying what is wrong
    otherwise, or when `height` is given and the sequence has another."""
    try:
        with open(path, "rb") as fh:
            arr = _ArrayUnpickler(io.BytesIO(fh.read())).load()
    except (
        OSError,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        AttributeError,
        TypeError,
    ) as exc:
        raise DatasetError(
            f"{path}: cannot read the silhouette pkl ({type(exc).__name__}: {exc}); "
            "expected a pickled uint8 numpy array [T, 64, 64]"
        ) from exc
    if (
        not isinstance(arr, np.ndarray)
        or arr.ndim != 3
        or arr.shape[1] not in INPUT_RESOLUTIONS
        or arr.shape[2] != arr.shape[1]
    ):
        got = arr.shape if isinstance(arr, np.ndarray) else type(arr).__name__
        raise DatasetError(
            f"{path}: expected silhouettes [T, 64, 64], got {got} "
            "(or [T, 128, 128] for a 128x88 model's data)"
        )
    if height is not None and arr.shape[1] != height:
        raise DatasetError(height_mismatch(path, int(arr.shape[1]), height))
    if arr.shape[0] == 0:
        raise DatasetError(f"{path}: the sequence holds no frames")
    if arr.dtype != np.uint8:
        raise DatasetError(f"{path}: expected dtype uint8 (0..255), got {arr.dtype}")
    return arr


def height_mismatch(where: object, found: int, wanted: int) -> str:
    """The one message for data of another input height than the model's."""
    return (
        f"{where}: the silhouettes are {found} px high, the model takes {wanted}-px input "
        f"(--input-height {wanted}); silhouettes are never resized: collect the data at "
        f"{wanted} px from the camera (`python -m edge collect --input-height {wanted}`)"
        + (" or train a 64-px model" if wanted != 64 else "")
    )


def add_input_height_flag(parser: argparse.ArgumentParser) -> None:
    """`--input-height` of the tools that read a checkpoint (evaluate, refit_head): a check."""
    add_input_height_argument(
        parser,
        None,
        "the input height the data and checkpoint must have: 64 (64x44) or 128 (128x88); "
        "default: the checkpoint's (data of another height are refused, never resized)",
    )


def checkpoint_height(model_height: int, flag: int | None, checkpoint: object) -> int:
    """The checkpoint's input height; DatasetError when `--input-height` says another."""
    if flag is not None and flag != model_height:
        raise DatasetError(
            f"--input-height {flag}, but {checkpoint} takes {model_height}-px input: drop the flag "
            f"or pass a checkpoint trained at {flag} px"
        )
    return model_height


def resolve_split(root: Path, split: str | Path) -> Path:
    """A split name (112, 114, 118, 1116, or any NAME of root/Scoliosis1K_NAME.json) or a JSON path."""
    candidate = Path(split)
    if candidate.suffix == ".json":
        if candidate.is_file():
            return candidate
        raise DatasetError(f"split file {candidate} does not exist")
    path = root / f"Scoliosis1K_{split}.json"
    if path.is_file():
        return path
    found = sorted(p.name for p in root.glob("Scoliosis1K_*.json")) if root.is_dir() else []
    raise DatasetError(
        f"split {split!r}: {path} does not exist (found {found or 'no split files'} in {root}); "
        "pass --split with a name of a Scoliosis1K_<name>.json in the data folder or a JSON path "
        "(OpenGait ships the real ones in datasets/Scoliosis1K/)"
    )


def read_split(path: Path, allow_overlap: bool = False) -> dict[str, list[str]]:
    """TRAIN_SET / TEST_SET of a split file as lists of str. An id in both is refused, unless
    `allow_overlap` (gaitmil.folds' audit reads such a file to report the overlap)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"split file {path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DatasetError(
            f"split file {path}: expected an object with TRAIN_SET and TEST_SET lists"
        )
    out = {}
    for key in SUBSETS.values():
        ids = doc.get(key)
        if not isinstance(ids, list):
            raise DatasetError(
                f"split file {path}: {key} must be a list of subject ids, got {type(ids).__name__}"
            )
        out[key] = [str(i) for i in ids]
    overlap = set(out["TRAIN_SET"]) & set(out["TEST_SET"])
    if overlap and not allow_overlap:
        raise DatasetError(
            f"split file {path}: {len(overlap)} ids are in both TRAIN_SET and TEST_SET, "
            f"e.g. {sorted(overlap)[:3]}"
        )
    return out


@dataclass(frozen=True)
class Sequence:
    subject: str
    label: int
    label_name: str
    view: str
    path: Path


def _find_pkl(view_dir: Path) -> Path:
    named = view_dir / f"{view_dir.name}.pkl"
    if named.is_file():
        return named
    pkls = sorted(view_dir.glob("*.pkl"))
    if len(pkls) == 1:
        return pkls[0]
    raise DatasetError(
        f"{view_dir}: expected {named.name} (found {[p.name for p in pkls] or 'no pkl files'})"
    )


def scan_sequences(root: Path, ids: list[str]) -> list[Sequence]:
    seqs: list[Sequence] = []
    missing = [i for i in ids if not (root / i).is_dir()]
    if missing:
        raise DatasetError(
            f"{len(missing)} subject folders of the split are missing under {root}, "
            f"e.g. {missing[:3]}; is --data the folder that holds the 5-digit subject folders?"
        )
    for sid in ids:
        class_dirs = sorted(p for p in (root / sid).iterdir() if p.is_dir())
        if not class_dirs:
            raise DatasetError(
                f"{root / sid}: no class folder (expected one of {sorted(CLASS_INDEX)})"
            )
        for cdir in class_dirs:
            name = cdir.name.lower()
            if name not in CLASS_INDEX:
                raise DatasetError(
                    f"{cdir}: unknown class folder {cdir.name!r}; expected one of {sorted(CLASS_INDEX)}"
                )
            views = sorted(p for p in cdir.iterdir() if p.is_dir())
            if not views:
                raise DatasetError(f"{cdir}: no view folder with a pkl inside")
            for vdir in views:
                seqs.append(Sequence(sid, CLASS_INDEX[name], name, vdir.name, _find_pkl(vdir)))
    return seqs


class Scoliosis1K(Dataset):
    """Items: (silhouettes float32 [T, 64, 44] in [0, 1], label, subject id, info dict);
    [T, 128, 88] for a data set of 128-px canvases (`input_height`: None reads it from the
    first sequence; given, a data set of another height is refused; mixed heights always are).

    Training draws `frames` random frames without order (with replacement when
    the sequence is shorter); evaluation takes `frames` evenly spaced frames,
    or all frames when frames is None. An item index may be a pair
    (index, seed) to make the random draw reproducible (see PKBatchSampler).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Path,
        subset: str = "train",
        frames: int | None = DEFAULT_FRAMES,
        train_sampling: bool = True,
        subjects: list[str] | None = None,
        input_height: int | None = None,
    ):
        self.root = Path(root)
        if input_height is not None and input_height not in INPUT_RESOLUTIONS:
            raise DatasetError(
                f"input height {input_height} is not in the model contract: use one of "
                f"{', '.join(str(h) for h in INPUT_RESOLUTIONS)}"
            )
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder {self.root} does not exist")
        if subset not in SUBSETS:
            raise DatasetError(f"subset {subset!r} is unknown: use 'train' or 'test'")
        if frames is not None and frames < 1:
            raise DatasetError(f"frames must be positive or None (all frames), got {frames}")
        if train_sampling and frames is None:
            raise DatasetError("training sampling needs a number of frames")
        self.split_path = resolve_split(self.root, split)
        ids = read_split(self.split_path)[SUBSETS[subset]]
        if not ids:
            raise DatasetError(f"split file {self.split_path}: {SUBSETS[subset]} is empty")
        if subjects is not None:  # a part of the subset, e.g. the validation subjects of TRAIN_SET
            outside = sorted(set(subjects) - set(ids))
            if outside:
                raise DatasetError(
                    f"subjects {outside[:3]} are not in {SUBSETS[subset]} of {self.split_path}"
                )
            wanted = set(subjects)
            ids = [i for i in ids if i in wanted]
            if not ids:
                raise DatasetError(
                    f"no subject of {SUBSETS[subset]} of {self.split_path} was selected"
                )
        self.selected = subjects is not None
        self.subset, self.frames, self.train_sampling = subset, frames, train_sampling
        self.sequences = scan_sequences(self.root, ids)
        subjects = sorted({s.subject for s in self.sequences})
        self.subject_index = {s: i for i, s in enumerate(subjects)}
        # the data's own height (first sequence); every item is then checked against it
        found = int(load_pkl(self.sequences[0].path).shape[1])
        if input_height is not None and found != input_height:
            raise DatasetError(height_mismatch(self.root, found, input_height))
        self.input_height = found

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.sequences]

    def frame_indices(self, length: int, rng: np.random.Generator) -> np.ndarray:
        if self.frames is None:
            return np.arange(length)
        if self.train_sampling:
            return rng.choice(length, size=self.frames, replace=length < self.frames)
        return even_indices(length, self.frames)

    def __getitem__(self, item):
        index, seed = item if isinstance(item, tuple) else (item, None)
        seq = self.sequences[index]
        arr = load_pkl(seq.path, self.input_height)
        idx = self.frame_indices(len(arr), np.random.default_rng(seed))
        sil = torch.from_numpy(cut(arr[idx]).astype(np.float32) / np.float32(255.0))
        info = {
            "subject": seq.subject,
            "class": seq.label_name,
            "view": seq.view,
            "path": str(seq.path),
            "length": len(arr),
            "index": index,
        }
        return sil, seq.label, seq.subject, info

    def describe(self) -> dict:
        counts = np.bincount(self.labels, minlength=len(CLASS_INDEX)).tolist()
        return {
            "root": str(self.root),
            "split": str(self.split_path.name),
            "subset": self.subset,
            "part": "selected subjects" if self.selected else "all",
            "sequences": len(self),
            "subjects": len(self.subject_index),
            "class_counts": dict(zip(sorted(CLASS_INDEX, key=CLASS_INDEX.get), counts)),
            "simulated": (self.root / "truth.json").is_file(),
            "input_height": self.input_height,
        }


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str], list[dict]]:
    """Stack items into (silhouettes [B, T, 64, 44] or [B, T, 128, 88], labels [B], subject ids,
    infos)."""
    sils, labels, subjects, infos = zip(*batch)
    return torch.stack(sils), torch.tensor(labels, dtype=torch.long), list(subjects), list(infos)


def validation_subjects(dataset: Scoliosis1K, fraction: float, seed: int) -> list[str]:
    """A class-stratified, seeded `fraction` of the dataset's subjects (at least one per class
    with two or more subjects): held out of fitting for early stopping, temperature and threshold."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"validation fraction {fraction} must be between 0 and 1")
    by_class: dict[int, list[str]] = {}
    for seq in dataset.sequences:  # a subject's class is that of its first sequence
        if not any(seq.subject in ids for ids in by_class.values()):
            by_class.setdefault(seq.label, []).append(seq.subject)
    rng = np.random.default_rng([seed, 0x7A1])
    chosen: list[str] = []
    for label in sorted(by_class):
        ids = sorted(by_class[label])
        if len(ids) < 2:
            continue
        n = min(max(1, int(round(fraction * len(ids)))), len(ids) - 1)
        chosen += [ids[i] for i in rng.permutation(len(ids))[:n]]
    if not chosen:
        raise DatasetError(
            "too few subjects for a validation split: need two or more subjects of a class"
        )
    return sorted(chosen)


def split_subjects_in_parts(
    dataset: Scoliosis1K, subjects: list[str], parts: int, seed: int
) -> list[list[str]]:
    """`subjects` (of `dataset`) dealt into `parts` disjoint, class-stratified, seeded groups:
    each class's subjects are shuffled and dealt round-robin, so every group gets a share of
    every class with at least `parts` subjects."""
    if parts < 1:
        raise DatasetError(f"parts must be >= 1, got {parts}")
    wanted = set(subjects)
    label_of: dict[str, int] = {}
    for seq in dataset.sequences:  # a subject's class is that of its first sequence
        if seq.subject in wanted and seq.subject not in label_of:
            label_of[seq.subject] = seq.label
    rng = np.random.default_rng([seed, 0x3A9])
    groups: list[list[str]] = [[] for _ in range(parts)]
    offset = 0
    for label in sorted(set(label_of.values())):
        ids = sorted(s for s, lab in label_of.items() if lab == label)
        for n, i in enumerate(rng.permutation(len(ids))):
            groups[(n + offset) % parts].append(ids[i])
        offset += len(ids)  # the next class starts where this one stopped: balanced sizes
    return [sorted(g) for g in groups]


class PKBatchSampler(Sampler):
    """Endless P x K batches: P subjects, K sequences of each (with replacement).

    Batch i is a pure function of (seed, i), so a resumed run sees the same
    batches. Under DDP every rank draws the same batch and keeps its share of
    the P subjects. Yields lists of (dataset index, frame-sampling seed).
    """

    def __init__(
        self,
        subjects: list[str],
        p: int,
        k: int,
        seed: int = 0,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.groups: dict[str, list[int]] = {}
        for i, s in enumerate(subjects):
            self.groups.setdefault(s, []).append(i)
        self.keys = sorted(self.groups)
        if p < 1 or k < 1:
            raise DatasetError(f"batch P={p} and K={k} must be positive")
        if p % world_size:
            raise DatasetError(f"batch P={p} must be divisible by the {world_size} processes")
        self.p, self.k, self.seed, self.start = p, k, seed, start
        self.rank, self.world_size = rank, world_size

    def batch(self, i: int) -> list[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, i])
        chosen = rng.choice(len(self.keys), size=self.p, replace=len(self.keys) < self.p)
        share = self.p // self.world_size
        out = []
        for j, key_index in enumerate(chosen):
            members = self.groups[self.keys[key_index]]
            picks = rng.choice(members, size=self.k, replace=True)
            seeds = rng.integers(0, 2**31, size=self.k)
            if self.rank * share <= j < (self.rank + 1) * share:
                out.extend((int(m), int(s)) for m, s in zip(picks, seeds))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        i = self.start
        while True:
            yield self.batch(i)
            i += 1
