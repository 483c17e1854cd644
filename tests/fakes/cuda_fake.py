"""A fake GPU behind cuda-python's `cuda.bindings.runtime` (pycuda: see pycuda_fake.py).

Conventions kept from the real libraries:

- cuda-python runtime calls return a tuple whose first item is a `cudaError_t`
  (an IntEnum, 0 = cudaSuccess) followed by the outputs: `(err,)`, `(err, ptr)`,
  `(err, props)`, `(err, ms)`; arguments keep the C parameter names (`devPtr`, `ptr`,
  `size`, `count`, `kind`, `stream`, `event`, `start`, `end`, `device`).
- handles (`cudaStream_t`, `cudaEvent_t`) are objects; cuda-bindings 13 deprecates
  `int(handle)` in favour of `cuda.bindings.utils.get_cuda_native_handle` (the 12.x
  variant here has no utils module, as the early cuda-bindings 12.x releases had none).

Memory is real host memory (ctypes buffers), so the addresses the project turns into
numpy views are valid; "device" buffers are host memory the fake TensorRT reads and writes.
Switchable failures: `world.fail[name] = cudaError_t.X` makes that runtime call fail;
`world.driver_too_old = True` makes every call return cudaErrorInsufficientDriver.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import threading
import time
import types
import warnings
from dataclasses import dataclass, field
from typing import Any


class cudaError_t(enum.IntEnum):  # noqa: N801 - the real name
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


@dataclass
class FakeGpu:
    name: str = "Orin (nvgpu)"
    major: int = 8
    minor: int = 7
    sm_count: int = 8
    total_memory: int = 7 * 2**30 + 600 * 2**20  # an Orin Nano 8 GB reports ~7.6 GiB

    @property
    def fingerprint(self) -> str:
        return f"{self.name}|{self.major}.{self.minor}|{self.sm_count}|{self.total_memory}"


@dataclass
class Allocation:
    buffer: Any
    size: int
    kind: str  # "host" | "device"
    device: int


@dataclass
class CudaWorld:
    """The state of the fake GPUs, shared by the fake cuda-python, pycuda and TensorRT."""

    gpus: list[FakeGpu] = field(default_factory=lambda: [FakeGpu()])
    fail: dict[str, cudaError_t] = field(default_factory=dict)
    driver_too_old: bool = False
    allocations: dict[int, Allocation] = field(default_factory=dict)
    streams: dict[int, int] = field(default_factory=dict)  # handle -> device
    events: dict[int, float | None] = field(default_factory=dict)  # handle -> recorded time
    leaks: list[str] = field(default_factory=list)  # pycuda objects that outlived their context
    _local: threading.local = field(default_factory=threading.local)
    _next_handle: int = 0x1000

    def handle(self) -> int:
        self._next_handle += 0x10
        return self._next_handle

    @property
    def runtime_device(self) -> int:
        return getattr(self._local, "device", 0)

    @property
    def context_stack(self) -> list[Any]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def current_device(self) -> int:
        """The device TensorRT and the runtime API use in this thread (a pushed context wins)."""
        stack = self.context_stack
        return stack[-1].device if stack else self.runtime_device

    def alloc(self, size: int, kind: str) -> int:
        buffer = (ctypes.c_byte * max(int(size), 1))()
        address = ctypes.addressof(buffer)
        self.allocations[address] = Allocation(buffer, int(size), kind, self.current_device())
        return address

    def find(self, address: int, nbytes: int, kind: str) -> Allocation | None:
        """The allocation of `kind` that holds [address, address + nbytes), if any."""
        for base, allocation in self.allocations.items():
            if (
                allocation.kind == kind
                and base <= address
                and address + nbytes <= base + allocation.size
            ):
                return allocation
        return None

    def live(self, kind: str) -> int:
        return sum(1 for a in self.allocations.values() if a.kind == kind)


class _Handle:
    """cudaStream_t / cudaEvent_t: int() works, deprecated from cuda-bindings 13 on."""

    def __init__(self, ptr: int, deprecated_int: bool) -> None:
        self._ptr = ptr
        self._deprecated_int = deprecated_int

    def __int__(self) -> int:
        if self._deprecated_int:
            warnings.warn(
                "int(cuda_obj) is deprecated: use cuda.bindings.utils.get_cuda_native_handle",
                DeprecationWarning,
                stacklevel=2,
            )
        return self._ptr

    def getPtr(self) -> int:  # noqa: N802 - the real name; a pointer *to* the handle, not the handle
        return id(self)


def _spec(module: types.ModuleType, package: bool = False) -> types.ModuleType:
    # find_spec() returns sys.modules[name].__spec__ and raises ValueError when it is None
    module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None, is_package=package)
    if package:
        module.__path__ = []
    return module


def cuda_python_modules(world: CudaWorld, bindings_major: int = 12) -> dict[str, types.ModuleType]:
    """sys.modules entries for `cuda`, `cuda.bindings`, `cuda.bindings.runtime` (and `.utils` on 13)."""
    rt = _spec(types.ModuleType("cuda.bindings.runtime"))
    deprecated = bindings_major >= 13

    class cudaStream_t(_Handle):  # noqa: N801
        pass

    class cudaEvent_t(_Handle):  # noqa: N801
        pass

    class cudaDeviceProp:  # noqa: N801
        def __init__(self, gpu: FakeGpu) -> None:
            self.name = gpu.name.encode() + b"\x00" * (256 - len(gpu.name))
            self.major, self.minor = gpu.major, gpu.minor
            self.multiProcessorCount = gpu.sm_count
            self.totalGlobalMem = gpu.total_memory

    def call(name: str, *outputs: Any) -> tuple:
        if world.driver_too_old:
            return (cudaError_t.cudaErrorInsufficientDriver, *([None] * len(outputs)))
        if name in world.fail:
            return (world.fail[name], *([None] * len(outputs)))
        return (cudaError_t.cudaSuccess, *outputs)

    def error(code: cudaError_t, n_outputs: int = 0) -> tuple:
        return (code, *([None] * n_outputs))

    def cudaGetDeviceCount():  # noqa: N802
        return call("cudaGetDeviceCount", len(world.gpus))

    def cudaSetDevice(device):  # noqa: N802
        if not 0 <= int(device) < len(world.gpus):
            return error(cudaError_t.cudaErrorInvalidDevice)
        result = call("cudaSetDevice")
        if result[0] == 0:
            world._local.device = int(device)
        return result

    def cudaGetDevice():  # noqa: N802
        return call("cudaGetDevice", world.current_device())

    def cudaGetDeviceProperties(device):  # noqa: N802
        if not 0 <= int(device) < len(world.gpus):
            return error(cudaError_t.cudaErrorInvalidDevice, 1)
        return call("cudaGetDeviceProperties", cudaDeviceProp(world.gpus[int(device)]))

    def cudaStreamCreate():  # noqa: N802
        result = call("cudaStreamCreate", None)
        if result[0] != 0:
            return result
        stream = cudaStream_t(world.handle(), deprecated)
        world.streams[stream._ptr] = world.current_device()
        return (result[0], stream)

    def cudaStreamDestroy(stream):  # noqa: N802
        if world.streams.pop(stream._ptr, None) is None:
            return error(cudaError_t.cudaErrorInvalidResourceHandle)
        return call("cudaStreamDestroy")

    def cudaStreamSynchronize(stream):  # noqa: N802
        if stream._ptr not in world.streams:
            return error(cudaError_t.cudaErrorInvalidResourceHandle)
        return call("cudaStreamSynchronize")

    def cudaEventCreate():  # noqa: N802
        result = call("cudaEventCreate", None)
        if result[0] != 0:
            return result
        event = cudaEvent_t(world.handle(), deprecated)
        world.events[event._ptr] = None
        return (result[0], event)

    def cudaEventDestroy(event):  # noqa: N802
        if event._ptr not in world.events:
            return error(cudaError_t.cudaErrorInvalidResourceHandle)
        del world.events[event._ptr]
        return call("cudaEventDestroy")

    def cudaEventRecord(event, stream):  # noqa: N802
        if event._ptr not in world.events or stream._ptr not in world.streams:
            return error(cudaError_t.cudaErrorInvalidResourceHandle)
        world.events[event._ptr] = time.perf_counter()
        return call("cudaEventRecord")

    def cudaEventElapsedTime(start, end):  # noqa: N802
        t0, t1 = world.events.get(start._ptr), world.events.get(end._ptr)
        if t0 is None or t1 is None:
            return error(cudaError_t.cudaErrorInvalidResourceHandle, 1)
        return call("cudaEventElapsedTime", max((t1 - t0) * 1000.0, 1e-4))

    def cudaMallocHost(size):  # noqa: N802
        result = call("cudaMallocHost", None)
        return result if result[0] != 0 else (result[0], world.alloc(int(size), "host"))

    def cudaFreeHost(ptr):  # noqa: N802
        allocation = world.allocations.get(int(ptr))
        if allocation is None or allocation.kind != "host":
            return error(cudaError_t.cudaErrorInvalidValue)
        del world.allocations[int(ptr)]
        return call("cudaFreeHost")

    def cudaMalloc(size):  # noqa: N802
        result = call("cudaMalloc", None)
        return result if result[0] != 0 else (result[0], world.alloc(int(size), "device"))

    def cudaFree(devPtr):  # noqa: N802, N803
        allocation = world.allocations.get(int(devPtr))
        if allocation is None or allocation.kind != "device":
            return error(cudaError_t.cudaErrorInvalidValue)
        del world.allocations[int(devPtr)]
        return call("cudaFree")

    def cudaMemcpyAsync(dst, src, count, kind, stream):  # noqa: N802
        kind = cudaMemcpyKind(kind)
        where = {
            cudaMemcpyKind.cudaMemcpyHostToDevice: ("device", "host"),
            cudaMemcpyKind.cudaMemcpyDeviceToHost: ("host", "device"),
        }.get(kind)
        if where is None or stream._ptr not in world.streams:
            return error(cudaError_t.cudaErrorInvalidValue)
        if (
            world.find(int(dst), int(count), where[0]) is None
            or world.find(int(src), int(count), where[1]) is None
        ):
            return error(cudaError_t.cudaErrorInvalidValue)
        result = call("cudaMemcpyAsync")
        if result[0] == 0:
            ctypes.memmove(int(dst), int(src), int(count))
        return result

    for value in list(locals().values()):
        if callable(value) and getattr(value, "__name__", "").startswith("cuda"):
            setattr(rt, value.__name__, value)
    rt.cudaError_t, rt.cudaMemcpyKind = cudaError_t, cudaMemcpyKind

    cuda = _spec(types.ModuleType("cuda"), package=True)
    bindings = _spec(types.ModuleType("cuda.bindings"), package=True)
    bindings.__version__ = (
        f"{bindings_major}.9.0" if bindings_major == 12 else f"{bindings_major}.0.1"
    )
    cuda.bindings, bindings.runtime = bindings, rt
    modules = {"cuda": cuda, "cuda.bindings": bindings, "cuda.bindings.runtime": rt}
    if bindings_major >= 13:
        utils = _spec(types.ModuleType("cuda.bindings.utils"))

        def get_cuda_native_handle(obj):
            if not isinstance(obj, _Handle):
                raise TypeError("Unknown type: " + str(type(obj)))
            return obj._ptr

        utils.get_cuda_native_handle = get_cuda_native_handle
        bindings.utils = utils
        modules["cuda.bindings.utils"] = utils
    return modules
