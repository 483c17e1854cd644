"""The model store on disk: install a model folder, switch the active pointer, roll back, remove.

Standard library only (see the package docstring). Every change takes the store's lock
(fcntl.flock on STORE/.lock), so two installs cannot interleave; every change becomes
visible by one rename, so a kill leaves either the old or the new state, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.errors import ModelError
from gaitcontract.manifest import sha256_file
from gaitcontract.model_folder import (
    CARD_NAME,
    MODEL_ID,
    STORE_ENTRY_NAME,
    DescribedFolder,
    ModelFolderError,
    describe_folder,
    read_json_object,
)

ENTRY_NAME = STORE_ENTRY_NAME  # the contract names it: describe_folder skips it
ACTIVE_NAME = "active.json"
INCOMING = ".incoming"
LOCK_NAME = ".lock"
ACTIVE_FORMAT = "gaitmil-store-active/1"
ENTRY_FORMAT = "gaitmil-store-entry/1"
HISTORY_KEPT = 20


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return read_json_object(path, what)
    except ModelFolderError as exc:
        raise ModelError(str(exc)) from None


def write_json_atomic(path: Path, data: Mapping[str, object]) -> None:
    """Write JSON so a reader (or a kill) sees the old file or the new one, never a mix."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with partial.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # the rename itself is durable only once the folder's entry is on disk
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoreEntry:
    """One installed model: its folder and what entry.json says about it."""

    model_id: str
    folder: Path
    default_file: str
    forms: dict[str, str]  # ONNX file name -> precision ("fp32", "fp16", "int8", "unknown")
    trained_on: str
    signer: str | None
    installed_at: str
    gate: dict[str, Any] = field(default_factory=dict)  # file -> figures of the last gate run

    @property
    def card(self) -> Path | None:
        card = self.folder / CARD_NAME
        return card if card.is_file() else None


@dataclass(frozen=True)
class ActiveModel:
    """The model the kiosk runs: the store entry and the ONNX form chosen."""

    entry: StoreEntry
    file: str
    activated_at: str
    pinned: bool = False

    @property
    def model_id(self) -> str:
        return self.entry.model_id

    @property
    def path(self) -> Path:
        return self.entry.folder / self.file

    @property
    def precision(self) -> str:
        return self.entry.forms.get(self.file, "unknown")


def engine_path_for(active: ActiveModel) -> Path:
    """Where the engine built on this kiosk from the active ONNX form lives: beside it."""
    return active.entry.folder / f"{Path(active.file).stem}.engine"


# (entry, ONNX file) -> gate figures with "passed": bool; raises nothing, the store records it
Gate = Callable[[StoreEntry, str], Mapping[str, Any]]


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- reading ----------------------------------------------------------------------------

    def entry(self, model_id: str) -> StoreEntry:
        folder = self.root / model_id
        if not MODEL_ID.match(model_id) or not (folder / ENTRY_NAME).is_file():
            known = ", ".join(e.model_id for e in self.entries()) or "none"
            raise ModelError(
                f"model store {self.root}: no model {model_id!r} (installed: {known}); "
                "install it with `python -m edge model install BUNDLE|FOLDER`"
            )
        data = _read_json(folder / ENTRY_NAME, "store entry")
        return StoreEntry(
            model_id=str(data["model_id"]),
            folder=folder,
            default_file=str(data["default_file"]),
            forms={str(k): str(v) for k, v in dict(data.get("forms") or {}).items()},
            trained_on=str(data.get("trained_on")),
            signer=data.get("signer"),
            installed_at=str(data.get("installed_at")),
            gate=dict(data.get("gate") or {}),
        )

    def entries(self) -> list[StoreEntry]:
        if not self.root.is_dir():
            return []
        found = [
            self.entry(p.name)
            for p in sorted(self.root.iterdir())
            if p.is_dir() and MODEL_ID.match(p.name) and (p / ENTRY_NAME).is_file()
        ]
        return sorted(found, key=lambda e: (e.installed_at, e.model_id))

    def _active_state(self) -> dict[str, Any] | None:
        path = self.root / ACTIVE_NAME
        if not path.is_file():
            return None
        return _read_json(path, "active pointer")

    def active(self) -> ActiveModel | None:
        """The active model, or None in a store where nothing was activated yet."""
        state = self._active_state()
        if state is None:
            return None
        entry = self.entry(str(state.get("model_id")))
        file = str(state.get("file"))
        if not (entry.folder / file).is_file():
            raise ModelError(
                f"model store {self.root}: the active model {entry.model_id} has no {file}; "
                f"reinstall it or activate another (`python -m edge model activate ID`)"
            )
        return ActiveModel(entry, file, str(state.get("activated_at")))

    def resolve(self, pin: str | None = None) -> ActiveModel:
        """What the kiosk runs: the pinned id (its default form) if given, else the active one."""
        if pin is not None:
            entry = self.entry(pin)
            return ActiveModel(entry, entry.default_file, entry.installed_at, pinned=True)
        active = self.active()
        if active is None:
            raise ModelError(
                f"model store {self.root}: no active model; install and activate one with "
                "`python -m edge model install BUNDLE|FOLDER --activate`"
            )
        return active

    def activated_times(self) -> dict[str, str]:
        """model id -> when it was last activated (from the pointer and its history)."""
        state = self._active_state() or {}
        times: dict[str, str] = {}
        for item in [*state.get("history", []), state]:
            if item.get("model_id"):
                times[str(item["model_id"])] = str(item.get("activated_at"))
        return times

    # -- changing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_NAME).open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def install_folder(
        self, source: Path, file: str | None = None, signer: str | None = None
    ) -> tuple[StoreEntry, bool]:
        """Copy a model folder into STORE/<model id>; (entry, True if newly installed).

        The copy goes to STORE/.incoming first and appears under its id by one rename, so a
        kill mid-copy leaves the store as it was (plus a leftover that the next change removes).
        Installing the same files again changes nothing.
        """
        try:
            described = describe_folder(Path(source), file)
        except ModelFolderError as exc:  # the model exit code, as for any unusable model
            raise ModelError(str(exc)) from None
        with self.locked():
            self._clean_incoming()
            target = self.root / described.model_id
            if target.exists():
                self._same_or_refuse(target, described)
                return self.entry(described.model_id), False
            partial = self.root / INCOMING / f"{described.model_id}.{secrets.token_hex(4)}"
            partial.mkdir(parents=True)
            for name in described.files:
                _copy_durably(described.source / name, partial / name)
            write_json_atomic(
                partial / ENTRY_NAME,
                {
                    "format": ENTRY_FORMAT,
                    "model_id": described.model_id,
                    "default_file": described.default_file,
                    "forms": described.forms,
                    "trained_on": described.trained_on,
                    "signer": signer,
                    "installed_at": now_text(),
                    "files": {name: sha256_file(partial / name) for name in described.files},
                    "gate": {},
                },
            )
            os.rename(partial, target)
            _fsync_dir(self.root)
        return self.entry(described.model_id), True

    def activate(
        self, model_id: str, file: str | None = None, gate: Gate | None = None
    ) -> ActiveModel:
        """Point the kiosk at model_id (its default form unless `file`), after the gate if given.

        A gate that fails leaves the previous model active and raises ModelError with the figures.
        """
        with self.locked():
            entry = self.entry(model_id)
            chosen = file or entry.default_file
            if chosen not in entry.forms:
                raise ModelError(
                    f"model {model_id} has no ONNX form {chosen!r}; it has: {', '.join(sorted(entry.forms))}"
                )
            state = self._active_state() or {}
            if (state.get("model_id"), state.get("file")) == (model_id, chosen):
                # already active (it passed the gate then): nothing changes, not even a byte of
                # the pointer or the entry, so a repeated install is idempotent
                return ActiveModel(entry, chosen, str(state.get("activated_at")))
            if gate is not None:
                figures = dict(gate(entry, chosen))
                self._record_gate(entry, chosen, figures)
                if not figures.get("passed"):
                    raise ModelError(
                        f"release gate refused {model_id} {chosen}: {figures.get('reason', 'failed')}; "
                        "the previous model stays active (figures: `python -m edge model list`)"
                    )
            history = list(state.get("history", []))
            if state.get("model_id") and (state["model_id"], state.get("file")) != (
                model_id,
                chosen,
            ):
                history.append({k: state.get(k) for k in ("model_id", "file", "activated_at")})
            self._write_active(model_id, chosen, history)
            return ActiveModel(self.entry(model_id), chosen, now_text())

    def rollback(self, gate: Gate | None = None, refused: str | None = None) -> ActiveModel:
        """Activate the previously active model again (walking back one step per call).

        `refused`: why the current model was put back (the engine's gate); kept in the pointer
        so health keeps the alarm until an operator activates a model.
        """
        with self.locked():
            state = self._active_state() or {}
            history = list(state.get("history", []))
            while (
                history
                and not (self.root / str(history[-1].get("model_id")) / ENTRY_NAME).is_file()
            ):
                history.pop()  # removed since: nothing to go back to there
            if not history:
                raise ModelError(
                    f"model store {self.root}: no earlier model to roll back to; "
                    "activate one by id (`python -m edge model activate ID`)"
                )
            previous = history.pop()
            model_id, chosen = str(previous["model_id"]), str(previous["file"])
            if gate is not None:
                entry = self.entry(model_id)
                figures = dict(gate(entry, chosen))
                self._record_gate(entry, chosen, figures)
                if not figures.get("passed"):
                    raise ModelError(
                        f"release gate refused {model_id} {chosen}: {figures.get('reason', 'failed')}; "
                        "the current model stays active"
                    )
            note = f"{refused}; {model_id} put back" if refused else None
            self._write_active(model_id, chosen, history, refused=note)
            return ActiveModel(self.entry(model_id), chosen, now_text())

    def refusal(self) -> str | None:
        """Why the engine unit last put the previous model back, until the next activation."""
        state = self._active_state() or {}
        return str(state["refused"]) if state.get("refused") else None

    def remove(self, model_id: str, pinned: str | None = None) -> None:
        """Delete an installed model; never the active one (nor the config's pinned one)."""
        with self.locked():
            entry = self.entry(model_id)
            state = self._active_state() or {}
            if state.get("model_id") == model_id:
                raise ModelError(
                    f"model {model_id} is the active model and is not removed; activate another "
                    "first (`python -m edge model activate ID` or `model rollback`)"
                )
            if pinned == model_id:
                raise ModelError(
                    f"model {model_id} is pinned by model.pin in the kiosk config; unpin it first"
                )
            # rename first: the id disappears at once, the bytes go after
            doomed = self.root / INCOMING / f"{model_id}.removing.{secrets.token_hex(4)}"
            doomed.parent.mkdir(parents=True, exist_ok=True)
            os.rename(entry.folder, doomed)
            shutil.rmtree(doomed)

    # -- helpers ----------------------------------------------------------------------------

    def _write_active(
        self, model_id: str, file: str, history: list[dict[str, Any]], refused: str | None = None
    ) -> None:
        state: dict[str, Any] = {
            "format": ACTIVE_FORMAT,
            "model_id": model_id,
            "file": file,
            "activated_at": now_text(),
            "history": history[-HISTORY_KEPT:],
        }
        if refused:
            state["refused"] = refused
        write_json_atomic(self.root / ACTIVE_NAME, state)

    def record_gate(self, model_id: str, key: str, figures: Mapping[str, object]) -> None:
        """Keep a gate's figures in the entry (e.g. an engine's, under "FORM@tensorrt")."""
        with self.locked():
            self._record_gate(self.entry(model_id), key, figures)

    def _record_gate(self, entry: StoreEntry, file: str, figures: Mapping[str, Any]) -> None:
        path = entry.folder / ENTRY_NAME
        data = _read_json(path, "store entry")
        data.setdefault("gate", {})[file] = {**figures, "at": now_text()}
        write_json_atomic(path, data)

    def _clean_incoming(self) -> None:
        # under the lock nobody else is copying: whatever is here was left by a killed install
        incoming = self.root / INCOMING
        if incoming.is_dir():
            for leftover in incoming.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)

    def _same_or_refuse(self, target: Path, described: DescribedFolder) -> None:
        recorded = _read_json(target / ENTRY_NAME, "store entry").get("files") or {}
        wanted = {name: sha256_file(described.source / name) for name in described.files}
        if recorded != wanted:
            raise ModelError(
                f"model store {self.root} already holds a different model with id "
                f"{described.model_id}; a model id names one set of files: remove the installed "
                f"one first (`python -m edge model remove {described.model_id}`, not while active) "
                "or give the new model its own id"
            )


def _copy_durably(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    os.chmod(target, 0o644)
    with target.open("rb") as handle:
        os.fsync(handle.fileno())
