"""The Runner base class: one lifecycle and one input check for every backend.

Follows Polygraphy's runner pattern: construct (cheap, no backend objects), activate()
(load the model, allocate), infer(feed) any number of times, deactivate() (free).
Subclasses implement only `_activate`, `_infer` and `_deactivate` and set the facts
(`_input_shape`, `_precision`, `_model_id`) in `_activate`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge.errors import ModelError, RunnerError
from gaitmil.spec import INPUT_HEIGHT, INPUT_NAME, INPUT_WIDTH, OUTPUT_NAMES

TIMING_KEYS = ("h2d_ms", "compute_ms", "d2h_ms", "total_ms")


class Runner(ABC):
    name: ClassVar[str] = "runner"
    # keyword options a backend accepts besides `threads` (unknown ones are refused)
    options_allowed: ClassVar[frozenset[str]] = frozenset()
    # how to make the model file when it is missing (engines are built, not exported)
    missing_model_hint: ClassVar[str] = (
        "build it with `python -m export onnx --checkpoint CKPT --out DIR` (or `make models` for the demo model)"
    )

    def __init__(
        self, model_path: str | Path, *, threads: int | None = None, **options: Any
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
        self._input_shape: tuple[int, int, int, int] | None = None
        self._precision: str | None = None
        self._model_id: str | None = None
        self._model_sha256: str | None = None
        self._stage_ms: dict[str, float] = {}

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
        self._activate()
        if self._input_shape is None:
            raise RunnerError(f"{self.name} runner did not learn its input shape while activating")
        self._active = True

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

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        if self._input_shape is None:
            self._require_active("input_shape")
        return self._input_shape

    @property
    def frames(self) -> int:
        return int(self.input_shape[1])

    @property
    def precision(self) -> str:
        if self._precision is None:
            self._require_active("precision")
        return self._precision

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            self._require_active("model_id")
        return self._model_id

    @property
    def model_sha256(self) -> str:
        if self._model_sha256 is None:
            from gaitmil.manifest import sha256_file

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
    @abstractmethod
    def _activate(self) -> None: ...

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
            "(convert uint8 silhouettes with gaitmil.spec.to_model_input)"
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


def check_model_input_shape(shape: Any, where: str) -> tuple[int, int, int, int]:
    """A model's declared input shape must be static [B, T, 64, 44]; raise ModelError otherwise."""
    dims = list(shape) if shape is not None else []
    static = all(isinstance(d, (int, np.integer)) and int(d) > 0 for d in dims)
    if (
        len(dims) != 4
        or not static
        or tuple(int(d) for d in dims[2:]) != (INPUT_HEIGHT, INPUT_WIDTH)
    ):
        raise ModelError(
            f"{where}: input '{INPUT_NAME}' has shape {dims}, expected static [B, T, {INPUT_HEIGHT}, {INPUT_WIDTH}]; "
            "re-export it with `python -m export onnx --checkpoint CKPT --out DIR`"
        )
    return tuple(int(d) for d in dims)  # type: ignore[return-value]
