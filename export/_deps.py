"""Lazy imports of optional libraries with errors that name the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from export.errors import DependencyError

_EXTRA_OF = {
    "torch": "pip install 'gaitmil-edge[export]' (torch==2.13.0)",
    "onnx": "pip install 'gaitmil-edge[export]'",
    "onnxruntime": "pip install onnxruntime (part of the base install)",
    "onnxconverter_common": "pip install 'gaitmil-edge[export]'",
    "tflite": "pip install 'gaitmil-edge[export]'",
    "ai_edge_litert": "pip install ai-edge-litert (only to check a converted .tflite model)",
    "tensorrt": (
        "on a Jetson install the JetPack package python3-libnvinfer "
        "(sudo apt install python3-libnvinfer); elsewhere pip install 'gaitmil-edge[tensorrt-cu12]' "
        "(CUDA 12) or 'gaitmil-edge[tensorrt-cu13]' (CUDA 13)"
    ),
}


def require(module: str) -> ModuleType:
    """Import `module` or raise DependencyError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        how = _EXTRA_OF.get(top, f"pip install {top}")
        raise DependencyError(f"{module} is not installed ({exc}); install it: {how}") from exc
