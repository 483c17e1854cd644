"""The Runner base class: one lifecycle and one input check for every backend.

Follows Polygraphy's runner pattern: construct (cheap, no backend objects), activate()
(load the model, allocate), infer(feed) any number of times, deactivate() (free).
Subclasses implement only `_activate`, `_infer` and `_deactivate`. The base reads the
model file once, applies the one manifest policy (`manifest_kind`, `require_manifest`)
and hands both to `_activate(model)`, which returns what the backend learned
(`ModelFacts`); the base completes those into the runner's `RunnerFacts` (manifest
first, then the model's own word, then one model-id fallback) and stores them.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edge.errors import ModelError, RunnerError
from gaitcontract.errors import GaitMILError
from gaitcontract.manifest import REGENERATE_HINT, find_manifest
from gaitcontract.spec import (
    INPUT_HEIGHT,
    INPUT_NAME,
    OUTPUT_NAMES,
    input_geometries,
    input_width,
    is_input_geometry,
)

if TYPE_CHECKING:
    from gaitcontract.manifest import Manifest

TIMING_KEYS = ("h2d_ms", "compute_ms", "d2h_ms", "total_ms")
InputShape = tuple[int, int, int, int]


@dataclass(frozen=True)
class ModelFile:
    """The model as the base read it: its bytes (read once), their sha256, its manifest."""

    path: Path
    data: bytes
    sha256: str
    manifest: Manifest | None  # None: the backend uses no manifests, or none was required and found


@dataclass(frozen=True)
class ModelFacts:
    """What a backend learned from the model itself while activating."""

    input_shape: InputShape
    precision: str | None = None  # None: the model does not say (the manifest must)
    model_id: str | None = None  # None: the model does not say


@dataclass(frozen=True)
class RunnerFacts:
    """The facts of an active runner: model, shape, precision and identity."""

    input_shape: InputShape
    precision: str
    model_id: str
    model_sha256: str
    manifest: Path | None  # the manifest the model was checked against


def complete_facts(found: ModelFacts, model: ModelFile, where: str) -> RunnerFacts:
    """The one rule for precision and model id: the manifest, then the model, then a fallback.

    A manifest that declares another input shape than the model has is refused.
    """
    manifest = model.manifest
    if manifest is not None:
        declared = manifest.input_shapes.get(INPUT_NAME)
        if declared is not None and tuple(declared) != found.input_shape:
            raise ModelError(
                f"{model.path}: manifest says input shape {list(declared)}, the model has "
                f"{list(found.input_shape)}; {REGENERATE_HINT}"
            )
    precision = (manifest.precision if manifest is not None else None) or found.precision
    if precision is None:
        raise ModelError(
            f"{where}: neither a manifest nor {model.path} itself says the model's precision; "
            f"{REGENERATE_HINT}"
        )
    model_id = (
        (manifest.model_id if manifest is not None else None)
        or found.model_id
        or f"{model.path.stem}-{model.sha256[:12]}"
    )
    return RunnerFacts(
        input_shape=found.input_shape,
        precision=precision,
        model_id=model_id,
        model_sha256=model.sha256,
        manifest=find_manifest(model.path) if manifest is not None else None,
    )


class Runner(ABC):
    name: ClassVar[str] = "runner"
    # keyword options a backend accepts besides `threads` (unknown ones are refused)
    options_allowed: ClassVar[frozenset[str]] = frozenset()
    # how to make the model file when it is missing (engines are built, not exported)
    missing_model_hint: ClassVar[str] = (
        "build it with `python -m export onnx --checkpoint CKPT --out DIR` (or `make models` for the demo model)"
    )
    # the manifest kind this backend's models carry; None: it reads no manifests
    manifest_kind: ClassVar[str | None] = None
    # whether a model without a manifest is refused when the `require_manifest` option is unset
    manifest_required_by_default: ClassVar[bool] = False

    def __init__(
        self, model_path: str | Path, *, threads: int | None = None, **options: object
    ) -> None:
        unknown = sorted(set(options) - self.options_allowed)
        if unknown:
            raise RunnerError(
                f"{self.name} runner: unknown option(s) {unknown}; allowed: {sorted(self.options_allowed) or 'none'}"
            )
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise RunnerError(
                f"{self.name} runner: threads={threads!r} must be a positive integer or None"
            )
        self.model_path = Path(model_path)
        self.threads = threads
        self.options = options
        self.last_timing: dict[str, float] | None = None
        self._active = False
        self._facts: RunnerFacts | None = None
        self._model_sha256: str | None = None
        self._stage_ms: dict[str, float] = {}

    @classmethod
    def declared_input_height(cls, model_path: str | Path) -> int:
        """The input height (64 or 128) the model's manifest declares, read before activation so
        the walk assembler makes walks of the model's resolution; 64 when there is no manifest
        to read (activation reports a missing or bad one, and the kiosk checks the activated
        model's height against its walks). ModelError for a height the contract lacks."""
        if cls.manifest_kind is None:
            return INPUT_HEIGHT
        path = find_manifest(model_path)
        try:
            from gaitcontract.manifest import read_manifest

            shape = read_manifest(path).input_shapes.get(INPUT_NAME)
        except GaitMILError:
            return INPUT_HEIGHT
        return checked_input_height(shape[2] if shape and len(shape) == 4 else None, str(path))

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return self._active

    def activate(self) -> None:
        if self._active:
            raise RunnerError(f"{self.name} runner for {self.model_path} is already active")
        if not self.model_path.is_file():
            raise ModelError(
                f"{self.name} runner: model file {self.model_path} does not exist; {self.missing_model_hint}"
            )
        self._check_backend()  # a missing library is named before the model is read
        model = self._read_model()
        found = self._activate(model)
        try:
            self._facts = complete_facts(found, model, f"{self.name} runner")
        except ModelError:
            self._deactivate()
            raise
        self._active = True

    def _read_model(self) -> ModelFile:
        """Read the model once; check it against its manifest (the one manifest policy)."""
        data = self.model_path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        self._model_sha256 = sha256
        manifest = self._manifest(sha256) if self.manifest_kind is not None else None
        return ModelFile(self.model_path, data, sha256, manifest)

    def _manifest(self, sha256: str) -> Manifest | None:
        from gaitcontract.manifest import ManifestError, verify_artifact

        path = find_manifest(self.model_path)
        if not path.is_file():
            if self.options.get("require_manifest", self.manifest_required_by_default):
                raise ModelError(
                    f"{self.name} runner: {self.model_path} has no manifest ({path.name}) beside it; "
                    f"{self.missing_model_hint}"
                )
            return None
        try:
            manifest = verify_artifact(self.model_path, path, model_sha256=sha256)
        except ManifestError as err:
            raise ModelError(f"{self.name} refuses {self.model_path}: {err}") from err
        if manifest.kind != self.manifest_kind:
            raise ModelError(
                f"{path} describes a {manifest.kind!r}, not the {self.manifest_kind!r} the {self.name} "
                f"runner loads; {self.missing_model_hint}"
            )
        return manifest

    def deactivate(self) -> None:
        if not self._active:
            raise RunnerError(
                f"{self.name} runner for {self.model_path} is not active: nothing to deactivate"
            )
        try:
            self._deactivate()
        finally:
            self._active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._active:
            self.deactivate()

    # -- facts ------------------------------------------------------------------------------
    def _require_active(self, what: str) -> None:
        if not self._active:
            raise RunnerError(
                f"{self.name} runner: {what} needs an active runner; call activate() first "
                "(or use `with runner:`) and do not use it after deactivate()"
            )

    def facts_of(self, what: str) -> RunnerFacts:
        """The facts learned by the last activate(); RunnerError before the first one."""
        if self._facts is None:
            self._require_active(what)
            raise RunnerError(f"{self.name} runner: {what} is unknown before activate()")
        return self._facts

    @property
    def facts(self) -> RunnerFacts:
        return self.facts_of("facts")

    @property
    def input_shape(self) -> InputShape:
        return self.facts_of("input_shape").input_shape

    @property
    def frames(self) -> int:
        return int(self.input_shape[1])

    @property
    def precision(self) -> str:
        return self.facts_of("precision").precision

    @property
    def model_id(self) -> str:
        return self.facts_of("model_id").model_id

    @property
    def model_sha256(self) -> str:
        """sha256 of the model file (of the bytes loaded, once active)."""
        if self._model_sha256 is None:
            from gaitcontract.manifest import sha256_file

            self._model_sha256 = sha256_file(self.model_path)
        return self._model_sha256

    # -- inference --------------------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._require_active("infer()")
        array = check_feed(feed, self.input_shape)
        self._stage_ms = {}
        start = time.perf_counter()
        outputs = self._infer(array)
        total = (time.perf_counter() - start) * 1000.0
        missing = [n for n in OUTPUT_NAMES if n not in outputs]
        if missing:
            raise ModelError(
                f"{self.name} runner: model {self.model_path} did not return outputs {missing}; "
                f"expected {list(OUTPUT_NAMES)}: re-export it with `python -m export onnx`"
            )
        stages = self._stage_ms
        self.last_timing = {
            "h2d_ms": float(stages.get("h2d_ms", 0.0)),
            "compute_ms": float(stages.get("compute_ms", total)),
            "d2h_ms": float(stages.get("d2h_ms", 0.0)),
            "total_ms": total,
        }
        return {name: np.asarray(outputs[name], dtype=np.float32) for name in OUTPUT_NAMES}

    # -- for subclasses ---------------------------------------------------------------------
    def _check_backend(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Raise RunnerError when the backend's library cannot be imported (default: no check)."""

    @abstractmethod
    def _activate(self, model: ModelFile) -> ModelFacts:
        """Load `model` (its bytes are already read and checked); return what it says."""

    @abstractmethod
    def _infer(self, silhouettes: np.ndarray) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _deactivate(self) -> None: ...

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<{type(self).__name__} {self.model_path} {state}>"


def check_feed(feed: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Validate a feed: exactly `silhouettes`, float32, `shape`, finite, in [0, 1]."""
    if not isinstance(feed, dict):
        raise RunnerError(
            f"feed must be a dict {{'{INPUT_NAME}': array}}, got {type(feed).__name__}"
        )
    names = sorted(feed)
    if names != [INPUT_NAME]:
        raise RunnerError(f"feed must hold exactly the tensor '{INPUT_NAME}', got {names}")
    array = feed[INPUT_NAME]
    if not isinstance(array, np.ndarray):
        raise RunnerError(
            f"tensor '{INPUT_NAME}' must be a numpy array, got {type(array).__name__}"
        )
    if array.dtype != np.float32:
        raise RunnerError(
            f"tensor '{INPUT_NAME}': expected dtype float32, got {array.dtype} "
            "(convert uint8 silhouettes with gaitcontract.spec.to_model_input)"
        )
    if tuple(array.shape) != tuple(shape):
        raise RunnerError(
            f"tensor '{INPUT_NAME}': expected shape {tuple(shape)}, got {tuple(array.shape)}"
        )
    if not np.isfinite(array).all():
        raise RunnerError(
            f"tensor '{INPUT_NAME}': contains NaN or inf; expected finite values in [0, 1]"
        )
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise RunnerError(
            f"tensor '{INPUT_NAME}': values must be in [0, 1], got [{low:g}, {high:g}]"
        )
    return np.ascontiguousarray(array)


def checked_input_height(height: int | None, where: str) -> int:
    """`height` if the contract has it (None: the default 64), else ModelError saying which exist."""
    if height is None:
        return INPUT_HEIGHT
    try:
        input_width(height)
    except ValueError as err:
        raise ModelError(f"{where}: the model's input: {err}") from err
    return int(height)


def check_model_input_shape(shape: Iterable[object] | None, where: str) -> InputShape:
    """A model's declared input shape must be static [B, T, 64, 44] (or another resolution of
    gaitcontract.spec.INPUT_RESOLUTIONS: [B, T, 128, 88]); raise ModelError otherwise.

    `shape` as the backend reports it: a dynamic dimension is a name (str) or None."""
    dims = list(shape) if shape is not None else []
    static = [int(d) for d in dims if isinstance(d, int | np.integer) and int(d) > 0]
    if len(dims) != 4 or len(static) != len(dims) or not is_input_geometry(static[2], static[3]):
        raise ModelError(
            f"{where}: input '{INPUT_NAME}' has shape {dims}, expected static {input_geometries()}; "
            "re-export it with `python -m export onnx --checkpoint CKPT --out DIR`"
        )
    batch, frames, height, width = static
    return batch, frames, height, width
