"""Artifact manifests: the `manifest.json` beside every ONNX model and engine.

Part of the model contract, so it stays json + hashlib only: the kiosk's
runners import it to check an artifact before loading it, without torch,
onnx or the export package.

A folder may hold several models (model.onnx, model.fp16.onnx, ...), so
each has its own manifest named after it (see `manifest_path_for`):
`model.onnx` -> `model.manifest.json`, `model.engine` ->
`model.engine.manifest.json`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gaitcontract.errors import GaitMILError

FORMAT = "gaitmil-manifest/1"
KINDS = ("onnx", "engine")
PRECISIONS = ("fp32", "fp16", "int8")
INT8_TARGETS = ("tensorrt", "cpu")

REGENERATE_HINT = (
    "regenerate it from the checkpoint with `python -m export onnx --checkpoint CKPT --out DIR` "
    "(then `python -m export fp16` / `python -m calibration quantize` for other precisions), "
    "or `make models` for the shipped demo model; rebuild an engine with "
    "`python -m export engine --onnx MODEL --out ENGINE --force`"
)


class ManifestError(GaitMILError):
    """A manifest is missing, malformed, or does not match the artifact beside it."""


@dataclass
class Manifest:
    """What an artifact is and how it was made; serialised as manifest JSON."""

    model_id: str
    kind: str  # "onnx" | "engine"
    precision: str  # "fp32" | "fp16" | "int8"
    files: dict[str, str]  # file name (relative to the manifest) -> sha256
    input_shapes: dict[str, list[int]]
    opset: int | None = None
    target: str | None = None  # int8 only: "tensorrt" | "cpu"
    calibration: dict[str, Any] | None = None  # {hash, method, set description}
    engine: dict[str, Any] | None = None  # {tensorrt_version, gpu_name, compute_capability, l4t}
    source: dict[str, Any] = field(
        default_factory=dict
    )  # checkpoint sha256 / model_id / onnx sha256
    weights_sha256: str | None = None  # hash of the initializers only (deterministic export check)
    extra: dict[str, Any] = field(default_factory=dict)
    # "simulated" | "real": the data the model was trained on; None in manifests written before it
    trained_on: str | None = None
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> Manifest:
        return cls(**validate_manifest_dict(data, where))


# ONNX metadata_props written by export.onnx_utils.set_metadata: `gaitmil.<key>` -> JSON text
METADATA_PREFIX = "gaitmil."


def metadata_value(meta: Mapping[str, str], key: str) -> Any:
    """The decoded value of `gaitmil.<key>` (or a bare `<key>`) in an ONNX model's metadata map;
    None when absent. Values that are not JSON are returned as written."""
    raw = meta.get(METADATA_PREFIX + key, meta.get(key))
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest_path_for(model_path: str | Path) -> Path:
    """The manifest file that describes `model_path`: `<name>.manifest.json` beside it.

    `model.onnx` -> `model.manifest.json`, `model.fp16.onnx` ->
    `model.fp16.manifest.json`, `model.engine` -> `model.engine.manifest.json`
    (engines keep their suffix so an engine and its ONNX never share one).
    """
    path = Path(model_path)
    stem = path.stem if path.suffix == ".onnx" else path.name
    return path.with_name(f"{stem}.manifest.json")


def find_manifest(model_path: str | Path) -> Path:
    """The manifest of `model_path`: `<name>.manifest.json`, else a folder-wide `manifest.json`.

    A plain `manifest.json` is accepted for folders holding one model;
    `verify_artifact` still checks that it lists the model's file name.
    """
    own = manifest_path_for(model_path)
    shared = Path(model_path).with_name("manifest.json")
    if not own.is_file() and shared.is_file():
        return shared
    return own


def validate_manifest_dict(data: Any, where: str = "manifest") -> dict[str, Any]:
    """Check the schema of a manifest dict; returns the dict with known keys only."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ManifestError(
            f"{where}: format is {data.get('format')!r}, expected {FORMAT!r}; {REGENERATE_HINT}"
        )
    required = ("model_id", "kind", "precision", "files", "input_shapes")
    missing = [key for key in required if key not in data]
    if missing:
        raise ManifestError(f"{where}: missing keys {missing}; {REGENERATE_HINT}")
    if data["kind"] not in KINDS:
        raise ManifestError(f"{where}: kind {data['kind']!r} is not one of {KINDS}")
    if data["precision"] not in PRECISIONS:
        raise ManifestError(f"{where}: precision {data['precision']!r} is not one of {PRECISIONS}")
    if data["precision"] == "int8" and data.get("target") not in INT8_TARGETS:
        raise ManifestError(
            f"{where}: an int8 manifest needs target in {INT8_TARGETS}, got {data.get('target')!r}"
        )
    if not isinstance(data["files"], dict) or not data["files"]:
        raise ManifestError(f"{where}: 'files' must map file names to sha256 hex digests")
    known = set(Manifest.__dataclass_fields__)
    return {key: value for key, value in data.items() if key in known}


def write_manifest(path: str | Path, manifest: Manifest | dict[str, Any]) -> Path:
    """Write a manifest (dataclass or dict) as pretty, key-sorted JSON; returns the path."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else dict(manifest)
    data.setdefault("format", FORMAT)
    validate_manifest_dict(data, str(path))
    path = Path(path)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist; {REGENERATE_HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(
            f"manifest {path} is not readable JSON ({exc}); {REGENERATE_HINT}"
        ) from exc
    return Manifest.from_dict(data, str(path))


def verify_artifact(
    model_path: str | Path,
    manifest_path: str | Path | None = None,
    *,
    model_sha256: str | None = None,
) -> Manifest:
    """Check `model_path` against its manifest; returns the manifest.

    Raises ManifestError when the manifest is missing or malformed, does not
    list the model, or when any listed file's sha256 differs (a model that
    was edited, truncated or replaced without regenerating its manifest).
    `model_sha256`: the hash of the model bytes the caller already read (and will
    load), so those bytes are the ones checked rather than the file read again.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ManifestError(f"model file {model_path} does not exist; {REGENERATE_HINT}")
    manifest_path = Path(manifest_path) if manifest_path else find_manifest(model_path)
    manifest = read_manifest(manifest_path)
    if model_path.name not in manifest.files:
        raise ManifestError(
            f"manifest {manifest_path} does not describe {model_path.name} "
            f"(it lists {sorted(manifest.files)}); {REGENERATE_HINT}"
        )
    for name, expected in manifest.files.items():
        file_path = manifest_path.parent / name
        if not file_path.is_file():
            raise ManifestError(
                f"{file_path} listed in {manifest_path} is missing; {REGENERATE_HINT}"
            )
        known = model_sha256 if name == model_path.name else None
        actual = known or sha256_file(file_path)
        if actual != expected:
            raise ManifestError(
                f"{file_path} has sha256 {actual[:16]}..., but {manifest_path} expects "
                f"{expected[:16]}...: the file changed after its manifest was written (replaced or truncated); {REGENERATE_HINT}"
            )
    return manifest
