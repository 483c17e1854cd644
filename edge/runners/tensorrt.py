"""TensorRT runner: a serialized engine, checked against its manifest and this machine.

All TensorRT and CUDA objects are created in activate(), in the calling thread, which
must be the thread that calls infer(). Uses the named-tensor API (TensorRT 8.5-11).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from edge.errors import ModelError, RunnerError
from edge.runners.base import Runner
from edge.runners.cuda_buffers import BUFFERS, CudaBuffers, device_facts
from edge.runners.trt_plan import (
    REBUILD_ENGINE,
    IOTensor,
    choose_cuda_library,
    engine_mismatches,
    numpy_dtype,
    plan_io,
)
from gaitmil.spec import INPUT_NAME, OUTPUT_NAMES


class TensorRTRunner(Runner):
    """Options: cuda_library ('cuda-python' | 'pycuda'; default: whichever is installed,
    cuda-python first), device (GPU index, default 0), onnx_path (check the engine was built
    from this ONNX), require_manifest (default True: engines are machine-specific)."""

    name = "tensorrt"
    options_allowed = frozenset({"cuda_library", "device", "onnx_path", "require_manifest"})

    def _activate(self) -> None:
        try:
            import tensorrt as trt
        except ImportError as err:
            raise RunnerError(
                "the tensorrt runner needs TensorRT: on a Jetson `apt install python3-libnvinfer`, "
                "elsewhere pip install 'gaitmil-edge[tensorrt]'"
            ) from err
        try:
            library = choose_cuda_library(lambda m: importlib.util.find_spec(m) is not None,
                                          self.options.get("cuda_library"))
        except ValueError as err:
            raise RunnerError(str(err)) from err
        device = int(self.options.get("device", 0))
        manifest = self._check_manifest(trt.__version__, library, device)

        self._trt_logger = trt.Logger(trt.Logger.WARNING)  # must outlive the runtime and engine
        self._trt_runtime = trt.Runtime(self._trt_logger)
        engine = self._trt_runtime.deserialize_cuda_engine(self.model_path.read_bytes())
        if engine is None:
            raise ModelError(f"TensorRT {trt.__version__} cannot deserialize {self.model_path}; {REBUILD_ENGINE}")
        tensors = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            tensors.append(IOTensor(
                name=name, is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
                dtype=numpy_dtype(engine.get_tensor_dtype(name)),
            ))
        try:
            plan = plan_io(tensors)
        except ValueError as err:
            raise ModelError(f"{self.model_path}: {err}; {REBUILD_ENGINE}") from err
        context = engine.create_execution_context()
        context.set_input_shape(INPUT_NAME, plan.input.shape)
        self._buffers: CudaBuffers = BUFFERS[library](plan, device)
        try:
            for tensor in plan.tensors:
                if not context.set_tensor_address(tensor.name, self._buffers.device[tensor.name]):
                    raise RunnerError(f"TensorRT refused the buffer address of tensor '{tensor.name}'")
        except BaseException:
            self._buffers.free()  # activate() failed: release what it allocated
            raise
        self._engine, self._context, self._plan = engine, context, plan
        self._input_shape = tuple(plan.input.shape)  # type: ignore[assignment]
        self._precision = manifest.precision if manifest is not None else "unknown"
        self._model_id = manifest.model_id if manifest is not None else f"{self.model_path.stem}-{self.model_sha256[:12]}"

    def _check_manifest(self, trt_version: str, library: str, device: int):
        from gaitmil.manifest import ManifestError, find_manifest, sha256_file, verify_artifact

        path = find_manifest(self.model_path)
        if not path.is_file():
            if self.options.get("require_manifest", True):
                raise ModelError(f"engine {self.model_path} has no manifest ({path.name}); {REBUILD_ENGINE}")
            return None
        try:
            manifest = verify_artifact(self.model_path, path)
        except ManifestError as err:
            raise ModelError(f"tensorrt refuses {self.model_path}: {err}") from err
        gpu_name, capability = device_facts(library, device)
        onnx_path = self.options.get("onnx_path")
        problems = engine_mismatches(
            manifest.to_dict(), tensorrt_version=trt_version, gpu_name=gpu_name, compute_capability=capability,
            onnx_sha256=sha256_file(onnx_path) if onnx_path else None,
        )
        if problems:
            raise ModelError(f"engine {self.model_path} does not match this machine: " + " | ".join(problems))
        return manifest

    def _infer(self, silhouettes: np.ndarray) -> dict[str, np.ndarray]:
        buffers = self._buffers
        np.copyto(buffers.host[INPUT_NAME], silhouettes)
        buffers.mark(0)
        buffers.copy_inputs()
        buffers.mark(1)
        if not self._context.execute_async_v3(buffers.stream_handle):
            raise RunnerError(f"TensorRT execute_async_v3 failed for {self.model_path}")
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

    def _deactivate(self) -> None:
        buffers = getattr(self, "_buffers", None)
        self._context = None
        self._engine = None
        if buffers is not None:
            buffers.free()
        self._buffers = None
        self._trt_runtime = None
        self._trt_logger = None
