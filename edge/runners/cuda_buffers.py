"""CUDA memory for the TensorRT runner, behind one interface with two implementations.

Order of life (create and use it in the inference thread only: CUDA contexts are per
thread; pycuda's autoinit is deliberately not used):

1. construct: make the device current in this thread (cudaSetDevice / push the primary
   context), then one stream and four timing events. TensorRT must deserialize the engine
   *after* this, so that the engine lives on the chosen device;
2. allocate(plan): pinned host and device buffers for every I/O tensor of the engine;
3. free(): everything in reverse order of creation; pycuda's stream, events and buffers
   are released while the context is still current, and the context is popped last.

A failure part-way through 1 or 2 releases what was already made before the error
propagates, so nothing leaks and no context stays pushed.
"""

from __future__ import annotations

import ctypes
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import RunnerError
from edge.runners.trt_plan import IOPlan, cuda_major_from_text, cuda_python_hint

CUDA_ERROR_INSUFFICIENT_DRIVER = 35  # cudaErrorInsufficientDriver: bindings newer than the driver


@dataclass(frozen=True)
class GpuFacts:
    """What an engine and a timing cache are bound to on the GPU side."""

    name: str
    compute_capability: tuple[int, int]
    sm_count: int | None = None
    memory_gib: int | None = None

    @property
    def capability_text(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def detect_cuda_major(
    l4t_file: str | Path = "/etc/nv_tegra_release",
    cuda_json: str | Path = "/usr/local/cuda/version.json",
) -> int | None:
    """This machine's CUDA major (from L4T on a Jetson, else the CUDA toolkit), or None."""
    l4t = None
    try:
        match = re.search(
            r"R(\d+)\s*\(\w+\)", Path(l4t_file).read_text(encoding="utf-8", errors="replace")
        )
        l4t = match.group(1) if match else None
    except OSError:
        pass
    try:
        cuda_text = Path(cuda_json).read_text(encoding="utf-8")
    except OSError:
        cuda_text = None
    return cuda_major_from_text(l4t, cuda_text)


def _check(result: Any, what: str) -> Any:
    """cuda-python calls return (error, value...); raise RunnerError on an error code."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        hint = ""
        if int(err) == CUDA_ERROR_INSUFFICIENT_DRIVER:
            hint = (
                "; the cuda-python bindings are newer than this machine's CUDA driver: "
                + cuda_python_hint(detect_cuda_major())
            )
        name = getattr(err, "name", None) or str(err)
        raise RunnerError(f"CUDA call {what} failed with {name} ({int(err)}){hint}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


def _checked_call(function: Callable[[Any], Any], handle: Any, what: str) -> None:
    """Call a cuda-python release function on `handle`; RunnerError on an error code."""
    _check(function(handle), what)


def _native_handle(obj: Any) -> int:
    """The address behind a cuda-python handle (`int(obj)` is deprecated, subject to removal)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:  # early cuda-bindings 12.x releases predate the helper
        return int(obj)
    return int(get_cuda_native_handle(obj))


class CudaBuffers(ABC):
    library: str = ""

    def __init__(self) -> None:
        self.plan: IOPlan | None = None
        self.host: dict[str, np.ndarray] = {}
        self.device: dict[str, int] = {}
        self._releases: list[tuple[str, Callable[[], object]]] = []  # LIFO

    def _on_free(self, what: str, release: Callable[[], object]) -> None:
        self._releases.append((what, release))

    def _release_all(self) -> list[str]:
        """Run every release, newest first; returns the ones that failed (all are attempted)."""
        failures = []
        while self._releases:
            what, release = self._releases.pop()
            try:
                release()
            except Exception as exc:  # noqa: BLE001 - keep releasing the rest, report below
                failures.append(f"{what}: {exc}")
        self.host, self.device = {}, {}
        return failures

    def _abandon(self, exc: BaseException) -> None:
        """Set-up failed: release what was made; the original error stays the one raised."""
        for failure in self._release_all():
            exc.add_note(f"while cleaning up: {failure}")

    def allocate(self, plan: IOPlan) -> None:
        """Pinned host and device buffers for every I/O tensor of `plan`."""
        self.plan = plan
        try:
            for tensor in plan.tensors:
                self._allocate_tensor(tensor.name, tensor.shape, tensor.dtype, tensor.nbytes)
        except BaseException as exc:
            self._abandon(exc)
            raise

    def free(self) -> None:
        """Release everything (idempotent); raise RunnerError naming what could not be released."""
        failures = self._release_all()
        if failures:
            raise RunnerError("CUDA clean-up failed: " + "; ".join(failures))

    def _allocated(self) -> IOPlan:
        if self.plan is None:
            raise RunnerError(f"{self.library} buffers: allocate(plan) before copying")
        return self.plan

    def copy_inputs(self) -> None:
        self._copy(self._allocated().input.name, to_device=True)

    def copy_outputs(self) -> None:
        for (
            tensor
        ) in self._allocated().outputs:  # the contract's outputs; extras stay on the device
            self._copy(tensor.name, to_device=False)

    @abstractmethod
    def _allocate_tensor(
        self, name: str, shape: tuple[int, ...], dtype: np.dtype, nbytes: int
    ) -> None: ...

    @abstractmethod
    def _copy(self, name: str, to_device: bool) -> None: ...

    @property
    @abstractmethod
    def stream_handle(self) -> int: ...

    @abstractmethod
    def mark(self, index: int) -> None:
        """Record event `index` (0..3) on the stream."""

    @abstractmethod
    def synchronize(self) -> None: ...

    @abstractmethod
    def elapsed_ms(self, start: int, end: int) -> float: ...


class CudaPythonBuffers(CudaBuffers):
    library = "cuda-python"

    def __init__(self, device: int = 0) -> None:
        super().__init__()
        from cuda.bindings import runtime as cudart

        self.rt = cudart
        try:
            _check(cudart.cudaSetDevice(device), f"cudaSetDevice({device})")  # this thread's device
            self.stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
            self._on_free(
                "cudaStreamDestroy",
                partial(_checked_call, cudart.cudaStreamDestroy, self.stream, "cudaStreamDestroy"),
            )
            self.events: list[Any] = []
            for _ in range(4):
                event = _check(cudart.cudaEventCreate(), "cudaEventCreate")
                self.events.append(event)
                self._on_free(
                    "cudaEventDestroy",
                    partial(_checked_call, cudart.cudaEventDestroy, event, "cudaEventDestroy"),
                )
        except BaseException as exc:
            self._abandon(exc)
            raise

    def _allocate_tensor(
        self, name: str, shape: tuple[int, ...], dtype: np.dtype, nbytes: int
    ) -> None:
        rt = self.rt
        host_ptr = int(_check(rt.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes}) for '{name}'"))
        self._on_free(
            f"cudaFreeHost '{name}'",
            partial(_checked_call, rt.cudaFreeHost, host_ptr, "cudaFreeHost"),
        )
        raw = (ctypes.c_byte * nbytes).from_address(host_ptr)
        self.host[name] = np.frombuffer(memoryview(raw).cast("B"), dtype=dtype).reshape(shape)
        device_ptr = int(_check(rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes}) for '{name}'"))
        self._on_free(
            f"cudaFree '{name}'", partial(_checked_call, rt.cudaFree, device_ptr, "cudaFree")
        )
        self.device[name] = device_ptr

    @property
    def stream_handle(self) -> int:
        return _native_handle(self.stream)

    def _copy(self, name: str, to_device: bool) -> None:
        rt = self.rt
        host = self.host[name].ctypes.data
        nbytes = self.host[name].nbytes
        if to_device:
            _check(
                rt.cudaMemcpyAsync(
                    self.device[name],
                    host,
                    nbytes,
                    rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                    self.stream,
                ),
                "cudaMemcpyAsync H2D",
            )
        else:
            _check(
                rt.cudaMemcpyAsync(
                    host,
                    self.device[name],
                    nbytes,
                    rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                    self.stream,
                ),
                "cudaMemcpyAsync D2H",
            )

    def mark(self, index: int) -> None:
        _check(self.rt.cudaEventRecord(self.events[index], self.stream), "cudaEventRecord")

    def synchronize(self) -> None:
        _check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def elapsed_ms(self, start: int, end: int) -> float:
        return float(
            _check(
                self.rt.cudaEventElapsedTime(self.events[start], self.events[end]),
                "cudaEventElapsedTime",
            )
        )


class PyCudaBuffers(CudaBuffers):
    """pycuda with the device's primary context pushed in this thread (shared with TensorRT)."""

    library = "pycuda"

    def __init__(self, device: int = 0) -> None:
        super().__init__()
        import pycuda.driver as cuda

        self.cuda = cuda
        self._device_allocs: dict[str, Any] = {}
        try:
            cuda.init()
            self.context = cuda.Device(device).retain_primary_context()
            self.context.push()
            self._on_free("pop the CUDA context", self._pop_context)  # released last
            self.stream = cuda.Stream()
            self.events = [cuda.Event() for _ in range(4)]
            self._on_free("stream and events", self._drop_stream)
        except BaseException as exc:
            self._abandon(exc)
            raise

    def _pop_context(self) -> None:
        self.context.pop()

    def _drop_host(self, name: str) -> None:
        self.host.pop(name, None)

    def _free_device(self, name: str) -> None:
        self._device_allocs.pop(name).free()

    def _drop_stream(self) -> None:
        # pycuda destroys a stream/event when its last reference goes: do it while the context is current
        self.stream, self.events = None, []

    def _allocate_tensor(
        self, name: str, shape: tuple[int, ...], dtype: np.dtype, nbytes: int
    ) -> None:
        cuda = self.cuda
        self.host[name] = cuda.pagelocked_empty(shape, dtype)
        self._on_free(f"pinned buffer '{name}'", partial(self._drop_host, name))
        alloc = cuda.mem_alloc(nbytes)
        self._device_allocs[name] = alloc
        self._on_free(f"device buffer '{name}'", partial(self._free_device, name))
        self.device[name] = int(alloc)

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def _copy(self, name: str, to_device: bool) -> None:
        if to_device:
            self.cuda.memcpy_htod_async(self._device_allocs[name], self.host[name], self.stream)
        else:
            self.cuda.memcpy_dtoh_async(self.host[name], self._device_allocs[name], self.stream)

    def mark(self, index: int) -> None:
        self.events[index].record(self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def elapsed_ms(self, start: int, end: int) -> float:
        return float(self.events[start].time_till(self.events[end]))


# library name -> buffers for GPU `device`
BUFFERS: dict[str, Callable[[int], CudaBuffers]] = {
    "cuda-python": CudaPythonBuffers,
    "pycuda": PyCudaBuffers,
}


def _facts_pycuda(device: int) -> GpuFacts:
    import pycuda.driver as cuda

    cuda.init()
    dev = cuda.Device(device)
    major, minor = dev.compute_capability()
    sm_count = int(dev.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT))
    return GpuFacts(
        str(dev.name()), (int(major), int(minor)), sm_count, round(int(dev.total_memory()) / 2**30)
    )


def _facts_cuda_python(device: int) -> GpuFacts:
    from cuda.bindings import runtime as cudart

    props = _check(cudart.cudaGetDeviceProperties(device), f"cudaGetDeviceProperties({device})")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuFacts(
        name.strip("\x00 "),
        (int(props.major), int(props.minor)),
        int(props.multiProcessorCount),
        round(int(props.totalGlobalMem) / 2**30),
    )


FACTS: dict[str, Callable[[int], GpuFacts]] = {
    "cuda-python": _facts_cuda_python,
    "pycuda": _facts_pycuda,
}


def device_facts(library: str, device: int = 0) -> GpuFacts:
    """Name, compute capability, SM count and memory of GPU `device` through the chosen library."""
    return FACTS[library](device)
