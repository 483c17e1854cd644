"""CUDA memory for the TensorRT runner, behind one interface with two implementations.

Pinned host buffers, device buffers, one stream, async H2D/D2H copies, CUDA events for
GPU time, explicit free. Create and use it in the inference thread only (CUDA contexts
are per thread; pycuda's autoinit is deliberately not used).
"""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from edge.errors import RunnerError
from edge.runners.trt_plan import IOPlan


class CudaBuffers(ABC):
    library: str = ""

    def __init__(self, plan: IOPlan) -> None:
        self.plan = plan
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, int] = {}

    @property
    @abstractmethod
    def stream_handle(self) -> int: ...

    @abstractmethod
    def copy_inputs(self) -> None: ...

    @abstractmethod
    def copy_outputs(self) -> None: ...

    @abstractmethod
    def mark(self, index: int) -> None:
        """Record event `index` (0..3) on the stream."""

    @abstractmethod
    def synchronize(self) -> None: ...

    @abstractmethod
    def elapsed_ms(self, start: int, end: int) -> float: ...

    @abstractmethod
    def free(self) -> None: ...


def _check(result: Any, what: str) -> Any:
    """cuda-python calls return (error, value...); raise RunnerError on an error code."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RunnerError(f"CUDA call {what} failed with {err}")
    return rest[0] if len(rest) == 1 else tuple(rest)


class CudaPythonBuffers(CudaBuffers):
    library = "cuda-python"

    def __init__(self, plan: IOPlan, device: int = 0) -> None:
        super().__init__(plan)
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart  # cuda-python < 12.6 layout
        self.rt = cudart
        self._host_ptrs: list[int] = []
        _check(cudart.cudaSetDevice(device), "cudaSetDevice")  # this thread's device (primary context)
        self.stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.events = [_check(cudart.cudaEventCreate(), "cudaEventCreate") for _ in range(4)]
        for tensor in plan.tensors:
            ptr = _check(cudart.cudaMallocHost(tensor.nbytes), "cudaMallocHost")
            self._host_ptrs.append(ptr)
            raw = (ctypes.c_byte * tensor.nbytes).from_address(int(ptr))
            self.host[tensor.name] = np.frombuffer(raw, dtype=tensor.dtype).reshape(tensor.shape)
            self.device[tensor.name] = int(_check(cudart.cudaMalloc(tensor.nbytes), "cudaMalloc"))

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def _copy(self, name: str, to_device: bool) -> None:
        rt = self.rt
        host = self.host[name].ctypes.data
        nbytes = self.host[name].nbytes
        if to_device:
            _check(rt.cudaMemcpyAsync(self.device[name], host, nbytes,
                                      rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream), "cudaMemcpyAsync H2D")
        else:
            _check(rt.cudaMemcpyAsync(host, self.device[name], nbytes,
                                      rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream), "cudaMemcpyAsync D2H")

    def copy_inputs(self) -> None:
        self._copy(self.plan.input.name, True)

    def copy_outputs(self) -> None:
        for tensor in self.plan.outputs:
            self._copy(tensor.name, False)

    def mark(self, index: int) -> None:
        _check(self.rt.cudaEventRecord(self.events[index], self.stream), "cudaEventRecord")

    def synchronize(self) -> None:
        _check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def elapsed_ms(self, start: int, end: int) -> float:
        return float(_check(self.rt.cudaEventElapsedTime(self.events[start], self.events[end]), "cudaEventElapsedTime"))

    def free(self) -> None:
        rt = self.rt
        for ptr in self.device.values():
            rt.cudaFree(ptr)
        for ptr in self._host_ptrs:
            rt.cudaFreeHost(ptr)
        for event in self.events:
            rt.cudaEventDestroy(event)
        rt.cudaStreamDestroy(self.stream)
        self.host, self.device, self._host_ptrs, self.events = {}, {}, [], []


class PyCudaBuffers(CudaBuffers):
    """pycuda with the device's primary context pushed in this thread (shared with TensorRT)."""

    library = "pycuda"

    def __init__(self, plan: IOPlan, device: int = 0) -> None:
        super().__init__(plan)
        import pycuda.driver as cuda

        cuda.init()
        self.cuda = cuda
        self.context = cuda.Device(device).retain_primary_context()
        self.context.push()
        self.stream = cuda.Stream()
        self.events = [cuda.Event() for _ in range(4)]
        self._device_allocs = {}
        for tensor in plan.tensors:
            self.host[tensor.name] = cuda.pagelocked_empty(tensor.shape, tensor.dtype)
            alloc = cuda.mem_alloc(tensor.nbytes)
            self._device_allocs[tensor.name] = alloc
            self.device[tensor.name] = int(alloc)

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def copy_inputs(self) -> None:
        name = self.plan.input.name
        self.cuda.memcpy_htod_async(self._device_allocs[name], self.host[name], self.stream)

    def copy_outputs(self) -> None:
        for tensor in self.plan.outputs:
            self.cuda.memcpy_dtoh_async(self.host[tensor.name], self._device_allocs[tensor.name], self.stream)

    def mark(self, index: int) -> None:
        self.events[index].record(self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def elapsed_ms(self, start: int, end: int) -> float:
        return float(self.events[start].time_till(self.events[end]))

    def free(self) -> None:
        for alloc in self._device_allocs.values():
            alloc.free()
        self._device_allocs, self.device, self.host = {}, {}, {}
        self.context.pop()


BUFFERS: dict[str, type[CudaBuffers]] = {"cuda-python": CudaPythonBuffers, "pycuda": PyCudaBuffers}


def device_facts(library: str, device: int = 0) -> tuple[str, tuple[int, int]]:
    """(GPU name, compute capability) through the chosen CUDA library."""
    if library == "pycuda":
        import pycuda.driver as cuda

        cuda.init()
        dev = cuda.Device(device)
        return dev.name(), tuple(dev.compute_capability())
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    props = _check(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00"), (int(props.major), int(props.minor))
