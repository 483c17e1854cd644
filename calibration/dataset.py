"""Calibration sets: walks in the model's input form, stratified, content-hashed, described.

File layout: `calib.npz` holds `silhouettes` (uint8 [N, T, 64, 44] or [N, T, 128, 88], 0/255,
turned into the model's float input by gaitcontract.spec.to_model_input),
`labels` (int64 [N], -1 where unknown) and `strata` (str [N], e.g.
"positive/side"); `calib.json` beside it describes the set and carries its
content hash (sha256 over the arrays, so it changes exactly when the data do).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.errors import CalibrationSetError
from gaitcontract import spec

FORMAT = "gaitmil-calibration-set/1"
MIN_PER_CLASS = 20
UNKNOWN = -1


@dataclass
class CalibrationSet:
    silhouettes: np.ndarray  # uint8 [N, T, 64, 44] or float32 in [0, 1]
    labels: np.ndarray  # int64 [N], -1 = unknown
    strata: list[str]
    source: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return int(len(self.silhouettes))

    @property
    def frames(self) -> int:
        return int(self.silhouettes.shape[1])

    def model_input(self) -> np.ndarray:
        """float32 [N, T, 64, 44] (or [N, T, 128, 88]) in [0, 1], the model's input form."""
        return spec.to_model_input(self.silhouettes, int(self.silhouettes.shape[-2]))

    def content_hash(self) -> str:
        return content_hash(self.silhouettes, self.labels)

    def describe(self) -> dict[str, Any]:
        labels = [int(x) for x in self.labels]
        return {
            "format": FORMAT,
            "hash": self.content_hash(),
            "count": self.count,
            "input": {
                "name": spec.INPUT_NAME,
                "shape": [int(d) for d in self.silhouettes.shape[1:]],
                "dtype": str(self.silhouettes.dtype),
            },
            "classes": {
                spec.CLASSES[k] if k >= 0 else "unknown": v
                for k, v in sorted(Counter(labels).items())
            },
            "strata": dict(sorted(Counter(self.strata).items())),
            "source": self.source,
            "warnings": self.warnings,
        }


def content_hash(silhouettes: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of the silhouettes and labels."""
    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(silhouettes), np.ascontiguousarray(labels, dtype=np.int64)):
        digest.update(f"{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def check_values(silhouettes: np.ndarray, where: str = "calibration set") -> None:
    """Refuse NaN, infinite or out-of-range values, naming the first walk and frame that has them."""
    if silhouettes.dtype == np.uint8:
        return  # 0..255 by construction
    if not np.issubdtype(silhouettes.dtype, np.floating):
        raise CalibrationSetError(
            f"{where}: silhouettes have dtype {silhouettes.dtype}; expected uint8 or float32"
        )
    bad = ~np.isfinite(silhouettes)
    if bad.any():
        walk, frame = np.argwhere(bad)[0][:2]
        raise CalibrationSetError(
            f"{where}: {int(bad.sum())} NaN/infinite values, first in walk {walk} "
            f"frame {frame}; regenerate the set (`python -m calibration collect`)"
        )
    outside = (silhouettes < 0) | (silhouettes > 1)
    if outside.any():
        walk, frame = np.argwhere(outside)[0][:2]
        raise CalibrationSetError(
            f"{where}: {int(outside.sum())} values outside [0, 1], first in walk {walk} "
            f"frame {frame} ({float(silhouettes[walk, frame].max()):.3g}); float "
            "silhouettes must be scaled to [0, 1] (uint8 0..255 is also accepted)"
        )


def class_warnings(
    labels: np.ndarray, minimum: int = MIN_PER_CLASS, by: str = "class"
) -> list[str]:
    """A warning with the counts when any class has fewer than `minimum` walks."""
    counts = {spec.CLASSES[k]: int((labels == k).sum()) for k in range(spec.NUM_CLASSES)}
    if all(v >= minimum for v in counts.values()):
        return []
    return [
        f"fewer than {minimum} walks per {by} ({counts}): calibration ranges may miss "
        "what the rarer classes look like; collect more walks (--count)"
    ]


def stratified_indices(strata: list[str], count: int, seed: int = 0) -> np.ndarray:
    """`count` indices spread as evenly as possible over the strata (round robin, shuffled within)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(strata):
        groups.setdefault(key, []).append(index)
    queues = {key: list(rng.permutation(members)) for key, members in sorted(groups.items())}
    chosen: list[int] = []
    while len(chosen) < count and any(queues.values()):
        for key in sorted(queues):
            if queues[key] and len(chosen) < count:
                chosen.append(int(queues[key].pop()))
    return np.array(sorted(chosen), dtype=np.int64)


def build_set(
    silhouettes: np.ndarray,
    labels: np.ndarray,
    strata: list[str],
    count: int,
    seed: int,
    source: dict[str, Any],
    warn_by: str = "class",
) -> CalibrationSet:
    """Stratified selection of `count` walks plus the class-count warning."""
    if count < 1:
        raise CalibrationSetError(f"--count must be at least 1, got {count}")
    if len(silhouettes) == 0:
        raise CalibrationSetError(
            f"no walks found in {source}: an empty calibration set cannot set ranges"
        )
    check_values(silhouettes)
    index = stratified_indices(strata, count, seed)
    chosen = CalibrationSet(
        silhouettes[index],
        np.asarray(labels)[index].astype(np.int64),
        [strata[i] for i in index],
        source,
    )
    chosen.warnings = class_warnings(chosen.labels, by=warn_by)
    return chosen


def save_set(calib: CalibrationSet, path: str | Path) -> tuple[Path, Path]:
    """Write `calib.npz` and its description `calib.json`; returns both paths."""
    path = Path(path)
    if calib.count == 0:
        raise CalibrationSetError("refusing to write an empty calibration set")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez_compressed(
                handle,
                silhouettes=calib.silhouettes,
                labels=calib.labels,
                strata=np.array(calib.strata, dtype=str),
            )
        described = path.with_suffix(".json")
        described.write_text(
            json.dumps(calib.describe(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    except OSError as exc:
        raise CalibrationSetError(
            f"cannot write {exc.filename or path} ({exc.strerror}); choose another --out"
        ) from exc
    return path, described


def load_set(
    path: str | Path,
    input_name: str = spec.INPUT_NAME,
    expected_shape: tuple[int, ...] | None = None,
) -> CalibrationSet:
    """Read and validate a calibration set; `expected_shape` is the model's per-walk input [T, 64, 44]
    (or [T, 128, 88])."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationSetError(
            f"calibration set {path} does not exist; make one with "
            "`python -m calibration collect --sim default --count 300 --out calib.npz`"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise CalibrationSetError(f"{path} is not a readable .npz calibration set ({exc})") from exc
    if input_name not in arrays:
        raise CalibrationSetError(
            f"{path} has no array named {input_name!r} (the model's input); "
            f"it holds {sorted(arrays)}"
        )
    silhouettes = arrays[input_name]
    if silhouettes.ndim == 0 or len(silhouettes) == 0:
        raise CalibrationSetError(
            f"{path} is empty: a calibration set needs walks to measure ranges on"
        )
    if expected_shape is not None and tuple(silhouettes.shape[1:]) != tuple(expected_shape):
        raise CalibrationSetError(
            f"{path}: walks have shape {list(silhouettes.shape[1:])} but the model's input {input_name!r} "
            f"expects {list(expected_shape)} per walk; collect a set with --frames {expected_shape[0]}"
            + (f" --input-height {expected_shape[1]}" if len(expected_shape) == 3 else "")
        )
    check_values(silhouettes, str(path))
    labels = arrays.get("labels", np.full(len(silhouettes), UNKNOWN, np.int64))
    strata = [str(s) for s in arrays.get("strata", np.array(["all"] * len(silhouettes)))]
    described = path.with_suffix(".json")
    source = (
        json.loads(described.read_text(encoding="utf-8")).get("source", {})
        if described.is_file()
        else {}
    )
    return CalibrationSet(silhouettes, labels.astype(np.int64), strata, source)
