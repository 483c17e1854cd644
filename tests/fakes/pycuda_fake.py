"""`pycuda` and `pycuda.driver` over the fake GPUs of cuda_fake.CudaWorld.

Kept from pycuda: `init()`, `Device(n)` with `name()`, `compute_capability()`,
`total_memory()`, `get_attribute(device_attribute.X)`, `retain_primary_context()`;
`Context.push()` and the static `Context.pop()`; `Stream()`, `Event()`, `mem_alloc()` and
`pagelocked_empty()` need a current context (LogicError otherwise); streams, events and
buffers are destroyed with their last reference, which must happen while their context
is current: the ones that do not are recorded in `world.leaks`.
"""

from __future__ import annotations

import ctypes
import time
import types
import weakref
from typing import Any

import numpy as np

from tests.fakes.cuda_fake import CudaWorld, _spec


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
