"""`calibration collect`: calibration sets from the simulator, a Scoliosis1K-layout dataset or site recordings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from calibration.dataset import UNKNOWN, CalibrationSet, build_set
from calibration.errors import CalibrationSetError
from gaitcontract import spec

SIM_DEFAULTS = {"seed": 0, "view": "mixed", "ratio": "1:1:1", "oversample": 2}


def parse_sim_spec(text: str) -> dict[str, Any]:
    """'default' or 'seed=3,view=side,ratio=2:1:1,oversample=2' -> options for gaitsim.sample_walks."""
    options: dict[str, Any] = dict(SIM_DEFAULTS)
    if text.strip() not in ("", "default"):
        for item in text.split(","):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in SIM_DEFAULTS:
                raise CalibrationSetError(
                    f"--sim {text!r}: {item!r} is not KEY=VALUE with KEY in {sorted(SIM_DEFAULTS)} "
                    "(e.g. --sim seed=3,view=mixed,ratio=1:1:1)"
                )
            options[key] = value.strip()
    try:
        ratio = tuple(int(x) for x in str(options["ratio"]).split(":"))
        if len(ratio) != 3 or min(ratio) < 0 or sum(ratio) == 0:
            raise ValueError(options["ratio"])
        return {
            "seed": int(options["seed"]),
            "view": str(options["view"]),
            "ratio": ratio,
            "oversample": max(1, int(options["oversample"])),
        }
    except ValueError as exc:
        raise CalibrationSetError(
            f"--sim {text!r}: bad number ({exc}); ratio is N:N:N (negative:neutral:positive)"
        ) from exc


def collect_sim(
    text: str, count: int, frames: int = spec.DEFAULT_FRAMES, height: int = spec.INPUT_HEIGHT
) -> CalibrationSet:
    """Simulated walks, balanced over classes and stratified by class and view, at the model's
    input `height` (64x44 or 128x88, normalised from the rendered camera mask)."""
    import gaitsim

    options = parse_sim_spec(text)
    batch = gaitsim.sample_walks(
        count * options["oversample"],
        seed=options["seed"],
        frames=frames,
        view=options["view"],
        ratio=options["ratio"],
        height=height,
    )
    strata = [
        f"{spec.CLASSES[int(label)]}/{view}" for label, view in zip(batch.labels, batch.views)
    ]
    source = {
        "kind": "simulator",
        "spec": {**options, "ratio": list(options["ratio"])},
        "frames": frames,
        "note": "simulated walks: a pipeline check, not a screening population",
    }
    return build_set(batch.silhouettes, batch.labels, strata, count, options["seed"], source)


def collect_dataset(
    root: str | Path,
    split: str,
    count: int,
    frames: int = spec.DEFAULT_FRAMES,
    seed: int = 0,
    height: int | None = None,
) -> CalibrationSet:
    """Training walks of a Scoliosis1K-layout dataset (evenly sampled frames), by class and view;
    `height`: the model's input height, which the data must have (None: the data's)."""
    from gaitmil.data import Scoliosis1K

    data = Scoliosis1K(
        root, split, subset="train", frames=frames, train_sampling=False, input_height=height
    )
    strata = [f"{s.label_name}/{s.view}" for s in data.sequences]
    # read only the walks that will be kept: sequences are pickles, often many
    from calibration.dataset import stratified_indices

    chosen = stratified_indices(strata, count, seed)
    sil = (
        np.stack([np.round(data[int(i)][0].numpy() * 255).astype(np.uint8) for i in chosen])
        if len(chosen)
        else np.zeros((0, frames, data.input_height, spec.input_width(data.input_height)), np.uint8)
    )
    labels = np.array([data.sequences[int(i)].label for i in chosen], np.int64)
    source = {
        "kind": "dataset",
        "root": str(root),
        "split": str(split),
        "subset": "train",
        "frames": frames,
    }
    return build_set(sil, labels, [strata[int(i)] for i in chosen], count, seed, source)


def _predicted_class(meta: dict[str, Any]) -> int:
    probs = meta.get("probs")
    if isinstance(probs, dict):
        probs = [probs.get(name, 0.0) for name in spec.CLASSES]
    if not isinstance(probs, (list, tuple)) or len(probs) != spec.NUM_CLASSES:
        return UNKNOWN
    return int(np.argmax(np.asarray(probs, dtype=np.float64)))


def read_recorded_walk(
    path: Path, frames: int, height: int = spec.INPUT_HEIGHT
) -> tuple[np.ndarray, dict[str, Any]]:
    """One kiosk recording (edge.walks.record format) -> (uint8 [T, 64, 44] evenly sampled, meta);
    [T, 128, 88] for `height` 128 (a recording of another height is refused, never resized)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            silhouettes = data["silhouettes"]
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise CalibrationSetError(
            f"{path} is not a recorded walk (silhouettes + meta npz): {exc}"
        ) from exc
    if (
        silhouettes.dtype != np.uint8
        or silhouettes.ndim != 3
        or silhouettes.shape[1:] != (height, spec.input_width(height))
    ):
        raise CalibrationSetError(
            f"{path}: silhouettes are {silhouettes.dtype} {list(silhouettes.shape)}, "
            f"expected uint8 [N, {height}, {spec.input_width(height)}] (--input-height {height}; "
            "silhouettes are never resized)"
        )
    if len(silhouettes) == 0:
        raise CalibrationSetError(f"{path}: the recorded walk has no frames")
    return silhouettes[spec.even_indices(len(silhouettes), frames)], meta


def collect_walks(
    directory: str | Path,
    count: int,
    frames: int = spec.DEFAULT_FRAMES,
    seed: int = 0,
    height: int = spec.INPUT_HEIGHT,
) -> CalibrationSet:
    """Walks a kiosk recorded on site (record_walks on), stratified by the model's predicted class.

    Site walks carry no label (nobody knows the truth at the kiosk), so the
    strata are the classes the deployed model predicted, which is said in
    the set's description and warnings.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CalibrationSetError(
            f"--walks {directory} is not a folder of recorded walks "
            "(turn privacy.record_walks on at the kiosk to make one)"
        )
    files = sorted(directory.glob("*.npz"))
    walks, predicted, sites = [], [], set()
    for path in files:
        silhouettes, meta = read_recorded_walk(path, frames, height)
        walks.append(silhouettes)
        predicted.append(_predicted_class(meta))
        sites.add(str(meta.get("site_id")))
    if not walks:
        raise CalibrationSetError(
            f"no recorded walks (*.npz) in {directory}: an empty calibration set "
            "cannot set ranges; record walks at the site first"
        )
    predicted_arr = np.array(predicted, np.int64)
    strata = [f"predicted-{spec.CLASSES[p]}" if p >= 0 else "predicted-unknown" for p in predicted]
    source = {
        "kind": "site-recordings",
        "folder": str(directory),
        "files": len(files),
        "sites": sorted(sites),
        "frames": frames,
        "stratified_by": "the deployed model's predicted class (no labels on site)",
    }
    calib = build_set(
        np.stack(walks), predicted_arr, strata, count, seed, source, warn_by="predicted class"
    )
    calib.labels = np.full(calib.count, UNKNOWN, np.int64)  # predictions are strata, not labels
    calib.warnings.append("site walks have no labels: strata are the model's predicted classes")
    return calib
