"""A fake GPU behind cuda-python's `cuda.bindings.runtime` and `pycuda.driver`.

Conventions kept from the real libraries:

- cuda-python runtime calls return a tuple whose first item is a `cudaError_t`
  (an IntEnum, 0 = cudaSuccess) followed by the outputs: `(err,)`, `(err, ptr)`,
  `(err, props)`, `(err, ms)`; arguments keep the C parameter names (`devPtr`, `ptr`,
  `size`, `count`, `kind`, `stream`, `event`, `start`, `end`, `device`).
- handles (`cudaStream_t`, `cudaEvent_t`) are objects; cuda-bindings 13 deprecates
  `int(handle)` in favour of `cuda.bindings.utils.get_cuda_native_handle` (the 12.x
  variant here has no utils module, as cuda-bindings 12.6 had none).
- pycuda: `init()`, `Device(n)` with `name()`, `compute_capability()`, `total_memory()`,
  `get_attribute(device_attribute.X)`, `retain_primary_context()`; `Context.push()` and the
  static `Context.pop()`; `Stream()` / `Event()` need a current context; `pagelocked_empty`,
  `mem_alloc`, `memcpy_htod_async(dest, src, stream=None)`, `memcpy_dtoh_async(dest, src, stream=None)`.

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
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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


def pycuda_modules(world: CudaWorld) -> dict[str, types.ModuleType]:
    """sys.modules entries for `pycuda` and `pycuda.driver`."""
    drv = _spec(types.ModuleType("pycuda.driver"))

    class Error(Exception):
        pass

    class LogicError(Error):
        pass

    class device_attribute:  # noqa: N801
        MULTIPROCESSOR_COUNT = 16

    def need_context(what: str) -> Any:
        if not world.context_stack:
            raise LogicError(
                f"explicit_context_dependent failed: invalid device context - "
                f"no currently active context? ({what})"
            )
        return world.context_stack[-1]

    class _ContextBound:
        def __init__(self, what: str) -> None:
            self._context = need_context(what)
            self._what = what

        def __del__(self) -> None:
            if self._context not in world.context_stack:
                world.leaks.append(f"{self._what} destroyed after its context was popped")

    class Context:
        def __init__(self, device: int) -> None:
            self.device = device

        def push(self) -> None:
            world.context_stack.append(self)

        @staticmethod
        def pop() -> None:
            if not world.context_stack:
                raise LogicError("cuCtxPopCurrent failed: invalid device context")
            world.context_stack.pop()

        def detach(self) -> None:
            pass

    class Device:
        def __init__(self, number: int) -> None:
            if not 0 <= int(number) < len(world.gpus):
                raise LogicError("cuDeviceGet failed: invalid device ordinal")
            self._number, self._gpu = int(number), world.gpus[int(number)]

        def name(self) -> str:
            return self._gpu.name

        def compute_capability(self) -> tuple[int, int]:
            return (self._gpu.major, self._gpu.minor)

        def total_memory(self) -> int:
            return self._gpu.total_memory

        def get_attribute(self, attr: int) -> int:
            if attr == device_attribute.MULTIPROCESSOR_COUNT:
                return self._gpu.sm_count
            raise LogicError(f"unknown device attribute {attr}")

        def retain_primary_context(self) -> Context:
            return Context(self._number)

    class Stream(_ContextBound):
        def __init__(self, flags: int = 0) -> None:
            super().__init__("Stream")
            self.handle = world.handle()
            world.streams[self.handle] = self._context.device

        def __del__(self) -> None:
            world.streams.pop(self.handle, None)
            super().__del__()

        def synchronize(self) -> None:
            need_context("Stream.synchronize")

    class Event(_ContextBound):
        def __init__(self, flags: int = 0) -> None:
            super().__init__("Event")
            self._time: float | None = None

        def record(self, stream: Stream | None = None) -> Event:
            self._time = time.perf_counter()
            return self

        def time_till(self, end: Event) -> float:
            if self._time is None or end._time is None:
                raise LogicError("cuEventElapsedTime failed: invalid resource handle")
            return max((end._time - self._time) * 1000.0, 1e-4)

    class DeviceAllocation(_ContextBound):
        def __init__(self, nbytes: int) -> None:
            super().__init__("DeviceAllocation")
            self._address = world.alloc(int(nbytes), "device")

        def __int__(self) -> int:
            return self._address

        def free(self) -> None:
            need_context("DeviceAllocation.free")
            world.allocations.pop(self._address, None)
            self._context = None  # freed: nothing left to leak

        def __del__(self) -> None:
            if self._context is not None:
                super().__del__()

    def init(flags: int = 0) -> None:
        pass

    def pagelocked_empty(shape, dtype, order="C", mem_flags=0):
        need_context("pagelocked_empty")
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        address = world.alloc(nbytes, "host")
        raw = (ctypes.c_byte * nbytes).from_address(address)
        array = np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)
        weakref.finalize(array, _free_host, address)  # pycuda frees pinned memory with its array
        return array

    def _free_host(address: int) -> None:
        if not world.context_stack:
            world.leaks.append("pinned host buffer freed after its context was popped")
        world.allocations.pop(address, None)

    def memcpy_htod_async(dest, src, stream=None):
        need_context("memcpy_htod_async")
        src = np.ascontiguousarray(src)
        if world.find(int(dest), src.nbytes, "device") is None:
            raise LogicError("cuMemcpyHtoDAsync failed: invalid argument")
        ctypes.memmove(int(dest), src.ctypes.data, src.nbytes)

    def memcpy_dtoh_async(dest, src, stream=None):
        need_context("memcpy_dtoh_async")
        if world.find(int(src), dest.nbytes, "device") is None:
            raise LogicError("cuMemcpyDtoHAsync failed: invalid argument")
        ctypes.memmove(dest.ctypes.data, int(src), dest.nbytes)

    def mem_alloc(bytes):  # noqa: A002 - pycuda's parameter name
        return DeviceAllocation(bytes)

    for name, value in dict(locals()).items():
        if name != "world" and not name.startswith("_"):
            setattr(drv, name, value)
    pycuda = _spec(types.ModuleType("pycuda"), package=True)
    pycuda.driver = drv
    return {"pycuda": pycuda, "pycuda.driver": drv}
