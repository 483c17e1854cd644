"""A model folder as export writes it and the kiosk's model store reads it: pure file facts.

A folder holds one model: its ONNX forms (model.onnx, model.fp16.onnx, ...) each with its
manifest, the card (card.json), and, when it streams, the split (encoder*.onnx + head.onnx tied
by model.split.json). `describe_folder` reads its id, forms and training data; export bundles
what it lists and the store copies what it lists, so both agree on what a model's files are.
Standard library only: systemd/install.sh runs the model store before the kiosk's venv exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gaitcontract.errors import GaitMILError
from gaitcontract.manifest import sha256_file

CARD_NAME = "card.json"
TRAINED_ON = ("simulated", "real")
# the same rule as the kiosk's ids: a folder name without '/', spaces or a leading dot
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Engines are code for the GPU they were built on (NVIDIA: never load an untrusted engine) and
# checkpoints are pickles: neither is one of a model's files (never bundled, never copied into
# the store); engines are built on the kiosk.
NOT_MODEL_FILES = (".engine", ".plan", ".pt", ".pth", ".tmp")
# the model store's record beside an installed model's files, not one of them
STORE_ENTRY_NAME = "entry.json"
# The streaming split (python -m export split): encoder*.onnx + head.onnx, tied by this manifest.
# They travel with the model (the kiosk's model.inference = "streaming" finds them beside
# the active form) and are gated with it, but they are not forms the kiosk can activate.
SPLIT_MANIFEST = "model.split.json"


class ModelFolderError(GaitMILError):
    """A model folder is not one model: no ONNX form, ids that disagree, no trained_on, bad JSON.

    The message names the file and how to fix it; the kiosk reports it as its ModelError."""


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`; ModelFolderError naming `what` and the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFolderError(
            f"{what} {path}: cannot read it ({exc}); fix or remove the file"
        ) from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{what} {path}: not a JSON object; fix or remove the file")
    return data


def read_split_manifest(folder: Path) -> dict[str, Any]:
    """model.split.json of `folder` with every file it names checked against its recorded sha256.

    ModelFolderError naming the file otherwise; the kiosk and export each add how to remake it."""
    path = folder / SPLIT_MANIFEST
    body = read_json_object(path, "split manifest")
    for name, digest in dict(body.get("files") or {}).items():
        file = folder / name
        if not file.is_file() or sha256_file(file) != digest:
            raise ModelFolderError(f"{file} is missing or does not match {path}")
    return body


@dataclass(frozen=True)
class DescribedFolder:
    """What describe_folder read: the model's id, forms, training data and files."""

    source: Path
    model_id: str
    default_file: str
    forms: dict[str, str]
    trained_on: str
    files: list[str]


def describe_folder(source: Path, file: str | None = None) -> DescribedFolder:
    """Read a model folder's card and manifests: its id, ONNX forms and training data."""
    if not source.is_dir():
        raise ModelFolderError(
            f"{source}: not a model folder (expected ONNX files, manifests, card.json)"
        )
    split = (
        read_json_object(source / SPLIT_MANIFEST, "split manifest")
        if (source / SPLIT_MANIFEST).is_file()
        else {}
    )
    split_files = split_graphs(source, split)
    onnx = sorted(
        p.name for p in source.glob("*.onnx") if p.is_file() and p.name not in split_files
    )
    if not onnx:
        raise ModelFolderError(
            f"{source}: no .onnx model in this folder; export one with `python -m export onnx`"
        )
    if file is None:
        file = onnx[0] if len(onnx) == 1 else "model.onnx" if "model.onnx" in onnx else None
        if file is None:
            raise ModelFolderError(
                f"{source}: several ONNX forms ({', '.join(onnx)}); name one with --file"
            )
    if file in split_files:
        raise ModelFolderError(
            f"{source}: {file} is part of the streaming split ({SPLIT_MANIFEST}), not a whole-walk "
            f"form the kiosk can run; choose one of: {', '.join(onnx)}"
        )
    if file not in onnx:
        raise ModelFolderError(f"{source}: no ONNX form {file!r}; it has: {', '.join(onnx)}")
    card = (
        read_json_object(source / CARD_NAME, "model card") if (source / CARD_NAME).is_file() else {}
    )
    manifests = {
        name: read_json_object(source / f"{Path(name).stem}.manifest.json", "manifest")
        for name in onnx
        if (source / f"{Path(name).stem}.manifest.json").is_file()
    }
    ids = {str(m["model_id"]) for m in manifests.values() if m.get("model_id")}
    # the split's own manifests are read too: encoder and head must be the same model
    for name in sorted(split_files):
        manifest = source / f"{Path(name).stem}.manifest.json"
        said_id = (
            read_json_object(manifest, "manifest").get("model_id") if manifest.is_file() else None
        )
        if said_id:
            ids.add(str(said_id))
    if split.get("model_id"):
        ids.add(str(split["model_id"]))
    if card.get("model_id"):
        ids.add(str(card["model_id"]))
    if len(ids) > 1:
        raise ModelFolderError(
            f"{source}: card and manifests name different model ids {sorted(ids)}; "
            "one folder holds one model: re-export it"
        )
    model_id = ids.pop() if ids else f"{Path(file).stem}-{sha256_file(source / file)[:12]}"
    if not MODEL_ID.match(model_id):
        raise ModelFolderError(
            f"{source}: model id {model_id!r} is not usable as a folder name "
            "(letters, digits, `_ . -`, at most 128)"
        )
    said = {str(m["trained_on"]) for m in manifests.values() if m.get("trained_on")}
    if card.get("trained_on"):
        said.add(str(card["trained_on"]))
    if len(said) != 1 or not said <= set(TRAINED_ON):
        where = f"{source / CARD_NAME}" if card else f"{source} (no card.json)"
        raise ModelFolderError(
            f"{where}: trained_on is {sorted(said) or 'missing'}; every card must say what the "
            'model was trained on: add "trained_on": "real" or "trained_on": "simulated" to card.json'
        )
    forms = {name: str(manifests.get(name, {}).get("precision") or "unknown") for name in onnx}
    files = sorted(
        p.name
        for p in source.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and not p.name.endswith(NOT_MODEL_FILES)
        and p.name != STORE_ENTRY_NAME
    )
    return DescribedFolder(source, model_id, file, forms, said.pop(), files)


def split_graphs(folder: Path, split: Mapping[str, Any] | None = None) -> set[str]:
    """The ONNX files of the streaming split in `folder`: the encoders and the head named by
    model.split.json, and any ONNX whose manifest gives it a split_role."""
    if split is None:
        path = folder / SPLIT_MANIFEST
        split = read_json_object(path, "split manifest") if path.is_file() else {}
    names = {str(n) for n in dict(split.get("encoders") or {}).values()}
    if split.get("head"):
        names.add(str(split["head"]))
    for onnx in folder.glob("*.onnx"):
        manifest = folder / f"{onnx.stem}.manifest.json"
        if manifest.is_file():
            extra = read_json_object(manifest, "manifest").get("extra") or {}
            if isinstance(extra, dict) and extra.get("split_role"):
                names.add(onnx.name)
    return names
