"""Put the fake TensorRT, cuda-python and pycuda into sys.modules (tests) or a subprocess (sitecustomize)."""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from types import ModuleType

import pytest

from tests.fakes.cuda_fake import CudaWorld, FakeGpu, cuda_python_modules
from tests.fakes.pycuda_fake import pycuda_modules
from tests.fakes.tensorrt_fake import FakeOptions, tensorrt_module

CUDA_PYTHON_NAMES = ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.bindings.utils")
PYCUDA_NAMES = ("pycuda", "pycuda.driver")


@dataclass
class FakeNvidia:
    world: CudaWorld
    trt: ModuleType
    options: FakeOptions


def fake_modules(
    *,
    tensorrt: str = "10.3.0.30",
    cuda_bindings: int | None = 12,
    pycuda: bool = True,
    gpus: list[FakeGpu] | None = None,
) -> tuple[FakeNvidia, dict[str, ModuleType | None]]:
    """The fakes, and the sys.modules entries that install them (None hides a library)."""
    world = CudaWorld(gpus=gpus or [FakeGpu()])
    trt, options = tensorrt_module(world, tensorrt)
    modules: dict[str, ModuleType | None] = {"tensorrt": trt}
    modules.update(dict.fromkeys(CUDA_PYTHON_NAMES))
    modules.update(dict.fromkeys(PYCUDA_NAMES))
    if cuda_bindings is not None:
        modules.update(cuda_python_modules(world, cuda_bindings))
    if pycuda:
        modules.update(pycuda_modules(world))
    return FakeNvidia(world, trt, options), modules


def install(monkeypatch: pytest.MonkeyPatch, **kwargs) -> FakeNvidia:
    """Install the fakes for one test; monkeypatch restores sys.modules afterwards."""
    fake, modules = fake_modules(**kwargs)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def install_into(target: MutableMapping[str, ModuleType | None], **kwargs) -> FakeNvidia:
    """Install the fakes for a whole process (the subprocess tests' sitecustomize)."""
    fake, modules = fake_modules(**kwargs)
    target.update(modules)
    return fake
