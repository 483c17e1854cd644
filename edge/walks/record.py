"""Write walks to disk for on-site calibration, only when privacy.record_walks is on.

Each walk becomes `DIR/<walk_id>.npz` with `silhouettes` uint8 [N, 64, 44] ([N, 128, 88]
from a 128-px model),
`timestamps` float64 [N] and `meta`, a 0-d string array holding JSON (walk_id,
kiosk_id, site_id, quality, model_id, probs, outcome). This is the format
`python -m calibration collect --walks DIR` reads. Silhouettes are biometric
data of children: the kiosk never calls this unless a setting asks for it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from gaitcontract.spec import input_geometries, is_input_geometry

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class RecordError(EdgeError):
    """A walk that cannot be recorded (bad id, bad array)."""


def record_walk(
    directory: str | Path,
    walk_id: str,
    silhouettes: np.ndarray,
    timestamps: np.ndarray,
    meta: dict,
) -> Path:
    """Write one walk atomically (temp file then rename) and return its path."""
    if not _SAFE_ID.match(walk_id) or walk_id.startswith("."):
        raise RecordError(f"walk id {walk_id!r} is not a safe file name (letters, digits, _ . -)")
    sil = np.asarray(silhouettes)
    if sil.dtype != np.uint8 or sil.ndim != 3 or not is_input_geometry(*sil.shape[1:]):
        raise RecordError(
            f"silhouettes must be uint8 {input_geometries('N')}, got {sil.dtype} {sil.shape}"
        )
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.shape != (sil.shape[0],):
        raise RecordError(f"timestamps must have shape ({sil.shape[0]},), got {ts.shape}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta_json = json.dumps({"walk_id": walk_id, **meta}, sort_keys=True, default=_jsonable)
    target = directory / f"{walk_id}.npz"
    # Write beside the target then rename, so a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(prefix=f".{walk_id}.", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, silhouettes=sil, timestamps=ts, meta=np.array(meta_json))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_walk(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read back (silhouettes, timestamps, meta) written by record_walk."""
    with np.load(path, allow_pickle=False) as data:
        return data["silhouettes"], data["timestamps"], json.loads(str(data["meta"]))


def _jsonable(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    raise TypeError(f"cannot store {type(value).__name__} in walk metadata")
