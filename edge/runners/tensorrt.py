"""TensorRT runner: a serialized engine, checked against its manifest and this machine.

All TensorRT and CUDA objects are created in activate(), in the calling thread, which
must be the thread that calls infer(). Uses the named-tensor API (TensorRT 10.x-11.x).

A serialized engine is executable code (NVIDIA's security guidance): load only engines
built on this machine by `python -m export engine`. The file is read once; those same
bytes are hashed, checked against the manifest and deserialized, so the file cannot
change between the check and the load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ModelError, RunnerError
from edge.options import int_of, text_or_none
from edge.runners.base import ModelFacts, ModelFile, Runner, check_model_input_shape
from edge.runners.cuda_buffers import BUFFERS, CudaBuffers, detect_cuda_major, device_facts
from edge.runners.trt_plan import (
    REBUILD_ENGINE,
    IOPlan,
    IOTensor,
    choose_cuda_library,
    engine_mismatches,
    module_available,
    numpy_dtype,
    plan_io,
)
from gaitcontract.spec import INPUT_NAME, OUTPUT_NAMES

if TYPE_CHECKING:
    from gaitcontract.manifest import Manifest


class TensorRTRunner(Runner):
    """Options: cuda_library ('cuda-python' | 'pycuda'; default: whichever is installed,
    cuda-python first), device (GPU index, default 0), onnx_path (check the engine was built
    from this ONNX), require_manifest (default True: engines are machine-specific)."""

    name = "tensorrt"
    options_allowed = frozenset({"cuda_library", "device", "onnx_path", "require_manifest"})
    manifest_kind = "engine"
    manifest_required_by_default = True  # engines are machine-specific
    _buffers: CudaBuffers | None = None
    _context: Any = None
    missing_model_hint = (
        "build it on this machine with "
        "`python -m export engine --onnx MODEL.onnx --out ENGINE --reuse-if-current`"
    )

    def _check_backend(self) -> None:
        _import_tensorrt()

    def _activate(self, model: ModelFile) -> ModelFacts:
        trt = _import_tensorrt()
        try:
            library = choose_cuda_library(
                module_available,
                text_or_none(self.options.get("cuda_library")),
                detect_cuda_major(),
            )
        except ValueError as err:
            raise RunnerError(str(err)) from err
        device = int_of(self.options.get("device", 0))
        self._buffers = None
        self._trt_logger = trt.Logger(trt.Logger.WARNING)  # must outlive the runtime and engine
        engine = context = None
        try:
            # the device (and pycuda's context) first: the engine is deserialized onto it
            self._buffers = buffers = BUFFERS[library](device)
            if model.manifest is not None:
                self._check_machine(model.manifest, trt.__version__, library, device)
            self._trt_runtime = trt.Runtime(self._trt_logger)
            # the bytes the base read, hashed and checked against the manifest: loaded as they are
            engine = self._trt_runtime.deserialize_cuda_engine(model.data)
            if engine is None:
                raise ModelError(
                    f"TensorRT {trt.__version__} cannot deserialize {self.model_path}; {REBUILD_ENGINE}"
                )
            plan = self._read_plan(trt, engine)
            context = self._bind(engine, plan, buffers)
        except BaseException as exc:
            engine = context = None  # TensorRT objects go first, while the CUDA context is current
            self._release(failed=exc)  # activate() failed: release what it made, context popped
            raise
        self._engine, self._context, self._plan = engine, context, plan
        # an engine does not record its precision: only its manifest says it
        input_shape = check_model_input_shape(plan.input.shape, str(self.model_path))
        return ModelFacts(input_shape, precision=None if model.manifest else "unknown")

    def _bind(self, engine: Any, plan: IOPlan, buffers: CudaBuffers) -> Any:
        """An execution context with the input shape set and every I/O tensor given an address."""
        context = engine.create_execution_context()
        if context is None:
            raise RunnerError(
                f"TensorRT could not create an execution context for {self.model_path}"
            )
        if not context.set_input_shape(INPUT_NAME, plan.input.shape):
            raise ModelError(
                f"TensorRT refused input shape {list(plan.input.shape)} for {self.model_path}; "
                f"{REBUILD_ENGINE}"
            )
        buffers.allocate(plan)
        for tensor in plan.tensors:  # every I/O tensor needs an address, extra outputs included
            if not context.set_tensor_address(tensor.name, buffers.device[tensor.name]):
                raise RunnerError(f"TensorRT refused the buffer address of tensor '{tensor.name}'")
        return context

    def _read_plan(self, trt: Any, engine: Any) -> IOPlan:
        tensors = []
        try:
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                tensors.append(
                    IOTensor(
                        name=name,
                        is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                        shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
                        dtype=numpy_dtype(engine.get_tensor_dtype(name)),
                    )
                )
            return plan_io(tensors)
        except ValueError as err:
            raise ModelError(f"{self.model_path}: {err}; {REBUILD_ENGINE}") from err

    def _check_machine(
        self, manifest: Manifest, trt_version: str, library: str, device: int
    ) -> None:
        """The engine's manifest must name this TensorRT, this GPU and (if given) this ONNX."""
        from gaitcontract.manifest import sha256_file

        facts = device_facts(library, device)
        onnx_path = text_or_none(self.options.get("onnx_path"))
        problems = engine_mismatches(
            manifest.to_dict(),
            tensorrt_version=trt_version,
            gpu_name=facts.name,
            compute_capability=facts.compute_capability,
            sm_count=facts.sm_count,
            memory_gib=facts.memory_gib,
            onnx_sha256=sha256_file(onnx_path) if onnx_path else None,
        )
        if problems:
            raise ModelError(
                f"engine {self.model_path} does not match this machine: " + " | ".join(problems)
            )

    def _infer(self, silhouettes: np.ndarray) -> dict[str, np.ndarray]:
        buffers, context = self._buffers, self._context
        if buffers is None or context is None:
            raise RunnerError(f"tensorrt runner for {self.model_path} has no engine loaded")
        np.copyto(buffers.host[INPUT_NAME], silhouettes)
        buffers.mark(0)
        buffers.copy_inputs()
        buffers.mark(1)
        if not context.execute_async_v3(buffers.stream_handle):
            raise RunnerError(
                f"TensorRT execute_async_v3 failed for {self.model_path} (see the TensorRT log)"
            )
        buffers.mark(2)
        buffers.copy_outputs()
        buffers.mark(3)
        buffers.synchronize()
        self._stage_ms = {
            "h2d_ms": buffers.elapsed_ms(0, 1),
            "compute_ms": buffers.elapsed_ms(1, 2),
            "d2h_ms": buffers.elapsed_ms(2, 3),
        }
        # copies: the pinned buffers are overwritten by the next call
        return {name: buffers.host[name].copy() for name in OUTPUT_NAMES}

    def _release(self, failed: BaseException | None = None) -> None:
        """TensorRT objects before the CUDA memory they use; the CUDA context goes last.

        After a failed activate() the original error stays the one raised; clean-up
        failures are attached to it as notes.
        """
        self._context = None
        self._engine = None
        self._trt_runtime = None
        buffers, self._buffers = getattr(self, "_buffers", None), None
        self._trt_logger = None
        if buffers is None:
            return
        try:
            buffers.free()
        except RunnerError as err:
            if failed is None:
                raise
            failed.add_note(str(err))

    def _deactivate(self) -> None:
        self._release()


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as err:
        raise RunnerError(
            "the tensorrt runner needs TensorRT: on a Jetson `apt install python3-libnvinfer`, "
            "elsewhere pip install 'gaitmil-edge[tensorrt-cu12]' (CUDA 12) or "
            "'gaitmil-edge[tensorrt-cu13]' (CUDA 13)"
        ) from err
    return tensorrt
