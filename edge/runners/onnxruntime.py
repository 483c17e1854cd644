"""ONNX Runtime runner: the kiosk's default backend (CPU; CUDA only when asked for)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ModelError, RunnerError
from edge.runners.base import InputShape, ModelFacts, ModelFile, Runner, check_model_input_shape
from gaitcontract.manifest import metadata_value
from gaitcontract.spec import INPUT_NAME, OUTPUT_NAMES

if TYPE_CHECKING:
    import onnxruntime

REBUILD = (
    "rebuild it with `python -m export onnx --checkpoint CKPT --out DIR` "
    "(or `make models` for the shipped demo model)"
)


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    """The ONNX Runtime session options of every session in the project, kiosk, export and
    benchmarks alike: `threads` intra-op threads and one inter-op thread (ORT's own choice when
    None), and only ORT's errors logged (its warnings are noise in a kiosk's journal)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def _ort_errors() -> tuple[type[BaseException], ...]:
    """ONNX Runtime's own exception classes (they derive from Exception directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "EngineError",
        "RuntimeException",
        "InvalidProtobuf",
        "ModelLoaded",
        "NotImplemented",
        "InvalidGraph",
        "EPFail",
    )
    found = tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))
    return found + (RuntimeError, ValueError, OSError)


def precision_from_graph(data: bytes) -> str:
    """Guess the precision of an ONNX model without the `onnx` package.

    Q/DQ models contain QuantizeLinear nodes; FP16 models (FP32 I/O kept) contain Cast nodes
    to FLOAT16 around a float16 body, recognisable by the op/type strings in the protobuf.
    Only used when neither a manifest nor the model's metadata says the precision.
    """
    if b"QuantizeLinear" in data:
        return "int8"
    try:
        import onnx
    except ImportError:
        return "fp32"
    model = onnx.load_from_string(data)
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


class OnnxRuntimeRunner(Runner):
    """Options:
    providers: list of execution providers, default ["CPUExecutionProvider"]; a provider
        that this onnxruntime build lacks is refused (never a silent CPU fallback).
    require_manifest: refuse a model without a manifest beside it (default False: a manifest
        is verified when present).
    The precision is the manifest's, else the model's metadata, else read from the graph.
    """

    name = "onnxruntime"
    options_allowed = frozenset({"providers", "require_manifest"})
    manifest_kind = "onnx"

    def _activate(self, model: ModelFile) -> ModelFacts:
        import onnxruntime as ort

        providers = self._providers_asked(ort.get_available_providers())
        try:
            session = ort.InferenceSession(
                model.data, sess_options=session_options(self.threads), providers=providers
            )
        except _ort_errors() as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ModelError(
                f"onnxruntime cannot load {self.model_path} ({first}): the file is corrupt or not "
                f"an ONNX model; {REBUILD}"
            ) from err
        if session.get_providers()[: len(providers)] != providers:
            raise RunnerError(
                f"onnxruntime: asked for providers {providers}, session uses {session.get_providers()}; "
                "refusing a silent fallback"
            )
        input_shape = self._check_io(session)
        meta = session.get_modelmeta().custom_metadata_map  # export's `gaitmil.*` keys
        precision = _text(metadata_value(meta, "precision"))
        if precision is None and model.manifest is None:
            precision = precision_from_graph(model.data)
        self._session = session
        model_id = _text(metadata_value(meta, "model_id"))
        return ModelFacts(input_shape, precision=precision, model_id=model_id)

    def _providers_asked(self, available: list[str]) -> list[str]:
        asked = self.options.get("providers") or ["CPUExecutionProvider"]
        if not isinstance(asked, Iterable):
            raise RunnerError(
                f"onnxruntime: providers={asked!r} must be a list of execution provider names"
            )
        providers = list(asked)
        missing = [p for p in providers if p not in available]
        if missing:
            raise RunnerError(
                f"onnxruntime: execution provider(s) {missing} are not available in this onnxruntime build "
                f"(available: {available}); install onnxruntime-gpu for CUDAExecutionProvider, or use "
                "providers=['CPUExecutionProvider']"
            )
        return providers

    def _check_io(self, session: Any) -> InputShape:
        """The model's I/O must be the shipped contract; returns its input shape."""
        inputs = {i.name: i for i in session.get_inputs()}
        if list(inputs) != [INPUT_NAME]:
            raise ModelError(
                f"{self.model_path}: inputs are {list(inputs)}, expected ['{INPUT_NAME}']; {REBUILD}"
            )
        if inputs[INPUT_NAME].type != "tensor(float)":
            raise ModelError(
                f"{self.model_path}: input '{INPUT_NAME}' is {inputs[INPUT_NAME].type}, expected "
                f"tensor(float); {REBUILD}"
            )
        outputs = [o.name for o in session.get_outputs()]
        missing = [n for n in OUTPUT_NAMES if n not in outputs]
        if missing:
            raise ModelError(
                f"{self.model_path}: outputs {missing} missing (has {outputs}); {REBUILD}"
            )
        return check_model_input_shape(inputs[INPUT_NAME].shape, str(self.model_path))

    def _infer(self, silhouettes: np.ndarray) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        values = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: silhouettes})
        self._stage_ms = {"compute_ms": (time.perf_counter() - start) * 1000.0}
        return dict(zip(OUTPUT_NAMES, values))

    def _deactivate(self) -> None:
        self._session = None


def _text(value: object) -> str | None:
    """A metadata value that must be a non-empty string, else None (not stated)."""
    return value if isinstance(value, str) and value else None
