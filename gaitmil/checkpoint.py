"""Self-describing Gait-MIL checkpoints that load without the training code.

A checkpoint is a torch file holding plain types and tensors only, so it
loads with `torch.load(weights_only=True)` (no pickled code runs):

    {"format": "gaitmil-checkpoint/1", "state_dict": {...}, "meta": {...},
     "train_state": {...} (optional: optimizer, scheduler, iteration)}
"""

from __future__ import annotations

import hashlib
import pickle
import subprocess
from datetime import datetime, timezone
from pathlib import Path

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError(
        "gaitmil's model and training code need PyTorch: "
        "pip install 'gaitmil-edge[train]' (torch==2.13.0)"
    ) from exc

import gaitcontract
from gaitcontract.errors import CheckpointError, ConfigError
from gaitcontract.spec import CLASSES, DEFAULT_FRAMES
from gaitmil.model import GaitMIL, GaitMILConfig

FORMAT = "gaitmil-checkpoint/1"
SUPPORTED_FORMATS = (FORMAT,)


def weights_sha256(model: GaitMIL) -> str:
    """sha256 over every tensor of the state dict in key order (weights, BN stats, centroids)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def code_version() -> str:
    """Package version, plus the git commit when the code runs from a checkout."""
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{gaitcontract.__version__}+g{sha}" if sha else gaitcontract.__version__


def build_meta(
    model: GaitMIL,
    *,
    data: dict | None = None,
    metrics: dict | None = None,
    training: dict | None = None,
    extra: dict | None = None,
    frames: int = DEFAULT_FRAMES,
) -> dict:
    sha = weights_sha256(model)
    return {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "classes": list(CLASSES),
        "input": {
            "height": model.config.input_height,
            "width": model.config.input_width,
            "frames": frames,
            "range": [0, 1],
        },
        "phases": model.config.phases,
        "data": data or {},
        "metrics": metrics or {},
        "training": training or {},
        "extra": extra or {},
        "code_version": code_version(),
        "weights_sha256": sha,
        "model_id": f"gaitmil-{model.config.preset}-{sha[:12]}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def save_checkpoint(
    path,
    model: GaitMIL,
    *,
    data: dict | None = None,
    metrics: dict | None = None,
    training: dict | None = None,
    extra: dict | None = None,
    train_state: dict | None = None,
    frames: int = DEFAULT_FRAMES,
) -> None:
    """Write weights + description to `path` (atomically: a crash leaves the old file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": build_meta(
            model, data=data, metrics=metrics, training=training, extra=extra, frames=frames
        ),
    }
    if train_state is not None:
        payload["train_state"] = train_state
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _read(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist: train one with `python -m gaitmil.train` "
            "or pass the path of an existing checkpoint.pt"
        )
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive since torch 1.6
        raise CheckpointError(
            f"{path} is not a torch checkpoint (not a zip archive written by torch.save); "
            "pass the checkpoint.pt written by `python -m gaitmil.train`"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        KeyError,
        IndexError,
    ) as exc:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); re-download or re-train it"
        ) from exc
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(
            f"{path} is a torch file but not a Gait-MIL checkpoint (no 'format' key); "
            f"expected one written by gaitmil.checkpoint.save_checkpoint ({FORMAT})"
        )
    if payload["format"] not in SUPPORTED_FORMATS:
        raise CheckpointError(
            f"{path} has checkpoint format {payload['format']!r}; this code reads "
            f"{', '.join(SUPPORTED_FORMATS)}: upgrade gaitmil-edge or re-export the checkpoint"
        )
    for key in ("state_dict", "meta"):
        if key not in payload:
            raise CheckpointError(
                f"{path} lacks the {key!r} entry of a {FORMAT} checkpoint: the file is damaged"
            )
    meta = payload["meta"]
    if list(meta.get("classes", [])) != list(CLASSES):
        raise CheckpointError(
            f"{path} was trained with class order {meta.get('classes')}, but this code uses "
            f"{list(CLASSES)}: its probabilities would be mislabelled; retrain it"
        )
    return payload


def describe_checkpoint(path) -> dict:
    """The checkpoint's description (meta), without building the model."""
    return dict(_read(path)["meta"])


def load_checkpoint(path, map_location="cpu") -> tuple[GaitMIL, dict]:
    """Rebuild the model from `path`; returns (model in eval mode, meta)."""
    payload = _read(path, map_location)
    meta = dict(payload["meta"])
    try:
        config = GaitMILConfig.from_dict(dict(meta["config"]))
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} has a bad model config: {exc}") from exc
    model = GaitMIL(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the {config.preset!r} config stored with them "
            f"({str(exc).splitlines()[0]}); the file is damaged or was edited"
        ) from exc
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    model.eval()
    return model, meta


def load_train_state(path, map_location="cpu") -> dict | None:
    """The optimizer/scheduler/iteration state saved for resuming, or None."""
    return _read(path, map_location).get("train_state")
