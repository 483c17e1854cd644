"""The one registry of inference backends: name -> "module:Class", imported on demand."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from edge.errors import RunnerError
from edge.runners.base import Runner

RUNNERS: dict[str, str] = {
    "onnxruntime": "edge.runners.onnxruntime:OnnxRuntimeRunner",
    "torch": "edge.runners.torch:TorchRunner",
    "tensorrt": "edge.runners.tensorrt:TensorRTRunner",
}

# what each backend needs importable, and the pip extra that installs it
REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "onnxruntime": (("onnxruntime",), "pip install gaitmil-edge"),
    "torch": (("torch",), "pip install gaitmil-edge[train]"),
    "tensorrt": (
        ("tensorrt",),
        "on a Jetson apt install python3-libnvinfer; elsewhere pip install "
        "'gaitmil-edge[tensorrt-cu12]' (CUDA 12) or 'gaitmil-edge[tensorrt-cu13]' (CUDA 13)",
    ),
}


def runner_class(name: str) -> type[Runner]:
    target = RUNNERS.get(name)
    if target is None:
        raise RunnerError(f"unknown runner {name!r}: choose one of {', '.join(RUNNERS)}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_runner(
    name: str, model_path: str | Path, *, threads: int | None = None, **options: object
) -> Runner:
    """Build (not activate) the runner `name` for `model_path`."""
    return runner_class(name)(model_path, threads=threads, **options)


def declared_input_height(name: str, model_path: str | Path) -> int:
    """The input height (64 or 128) of the model `model_path` for runner `name`, before
    activation: the height of the walks the kiosk must make for it (Runner.declared_input_height)."""
    return runner_class(name).declared_input_height(model_path)


def available_runners() -> dict[str, bool | str]:
    """name -> True, or the reason it cannot run here (without importing the backends)."""
    result: dict[str, bool | str] = {}
    for name, (modules, how) in REQUIREMENTS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        result[name] = True if not missing else f"{', '.join(missing)} not installed: {how}"
    if result.get("tensorrt") is True:
        from edge.runners.trt_plan import CUDA_MODULES, cuda_python_hint, module_available

        if not any(module_available(m) for m in CUDA_MODULES.values()):
            from edge.runners.cuda_buffers import detect_cuda_major

            result["tensorrt"] = (
                f"neither cuda-python nor pycuda installed: {cuda_python_hint(detect_cuda_major())}, "
                "or pip install 'gaitmil-edge[pycuda]'"
            )
    return result
