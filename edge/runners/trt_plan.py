"""Pure decisions for the TensorRT runner (no tensorrt/CUDA imports: tested anywhere).

- which CUDA Python library to use (cuda-python first, then pycuda);
- TensorRT data type -> numpy dtype;
- I/O plan from the engine's named tensors (names, static shapes, dtypes, byte sizes);
- engine manifest vs this machine (TensorRT version, GPU, compute capability, precision,
  ONNX hash): a list of mismatches, each saying how to rebuild;
- which pip extra brings the cuda-python that matches this machine's CUDA major.

The builder (export.engine) uses the same version rule, so the two never disagree.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from edge.options import int_of
from gaitcontract.spec import INPUT_NAME, OUTPUT_NAMES, input_geometries, is_input_geometry

CUDA_LIBRARIES = ("cuda-python", "pycuda")
# The module that proves a library is usable: `cuda` alone is a namespace package that any
# folder named cuda/ on sys.path satisfies, so probe the runtime bindings themselves.
CUDA_MODULES = {"cuda-python": "cuda.bindings.runtime", "pycuda": "pycuda.driver"}

# cuda-python's major version must match the CUDA major of the driver/JetPack: 13.x bindings
# need a CUDA 13 driver, so JetPack 6 (CUDA 12.6) needs cuda-python 12.x (see setup.py extras).
CUDA_EXTRAS = {12: "cuda12", 13: "cuda13"}
JETPACK_OF_CUDA = {12: "JetPack 6", 13: "JetPack 7"}
L4T_CUDA_MAJOR = {36: 12, 38: 13}  # L4T R36 = JetPack 6 (CUDA 12.6), R38 = JetPack 7 (CUDA 13)

# TensorRT DataType enum names -> numpy dtypes (BF16/FP8/INT4 have no numpy host type here)
TRT_DTYPES: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "UINT8": np.dtype(np.uint8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
}

REBUILD_ENGINE = "rebuild it on this machine with `python -m export engine --onnx MODEL.onnx --out ENGINE --force`"


def cuda_major_from_text(l4t_release: str | None, cuda_version_json: str | None) -> int | None:
    """CUDA major of this machine from the L4T release ('36.4.3') or /usr/local/cuda/version.json."""
    if l4t_release:
        major = L4T_CUDA_MAJOR.get(int(parse_version(l4t_release)[0]))
        if major is not None:
            return major
    if cuda_version_json:
        try:
            version = json.loads(cuda_version_json)["cuda"]["version"]
            return int(parse_version(version)[0])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def cuda_python_hint(cuda_major: int | None) -> str:
    """The install command for the cuda-python that matches `cuda_major` (both when unknown)."""
    if cuda_major in CUDA_EXTRAS:
        return f"pip install 'gaitmil-edge[{CUDA_EXTRAS[cuda_major]}]' (cuda-python for CUDA {cuda_major})"
    return (
        "pip install 'gaitmil-edge[cuda12]' on JetPack 6 / CUDA 12, "
        "'gaitmil-edge[cuda13]' on JetPack 7 / CUDA 13"
    )


def module_available(name: str) -> bool:
    """find_spec that says False (instead of raising) when a parent package is missing."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def choose_cuda_library(
    has_module: Callable[[str], bool], prefer: str | None = None, cuda_major: int | None = None
) -> str:
    """'cuda-python' if importable (NVIDIA's samples use it since TensorRT 10.14), else 'pycuda'."""
    if prefer is not None:
        if prefer not in CUDA_LIBRARIES:
            raise ValueError(f"cuda library {prefer!r}: use one of {', '.join(CUDA_LIBRARIES)}")
        if not has_module(CUDA_MODULES[prefer]):
            how = (
                cuda_python_hint(cuda_major)
                if prefer == "cuda-python"
                else "pip install 'gaitmil-edge[pycuda]'"
            )
            raise ValueError(f"cuda library {prefer!r} was asked for but is not installed: {how}")
        return prefer
    for name in CUDA_LIBRARIES:
        if has_module(CUDA_MODULES[name]):
            return name
    raise ValueError(
        f"the tensorrt runner needs cuda-python or pycuda: {cuda_python_hint(cuda_major)}, "
        "or pip install 'gaitmil-edge[pycuda]'"
    )


def numpy_dtype(trt_dtype: object) -> np.dtype:
    """numpy dtype for a tensorrt.DataType (or its name, e.g. 'FLOAT')."""
    name = getattr(trt_dtype, "name", str(trt_dtype)).split(".")[-1].upper()
    if name not in TRT_DTYPES:
        raise ValueError(
            f"TensorRT data type {name} has no numpy host type here; expected one of {sorted(TRT_DTYPES)}"
        )
    return TRT_DTYPES[name]


@dataclass(frozen=True)
class IOTensor:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True)
class IOPlan:
    input: IOTensor
    outputs: tuple[IOTensor, ...]  # the contract's outputs, in OUTPUT_NAMES order
    extra_outputs: tuple[IOTensor, ...] = ()  # other engine outputs: bound, never copied back

    @property
    def tensors(self) -> tuple[IOTensor, ...]:
        """Every I/O tensor of the engine: TensorRT needs an address for each one."""
        return (self.input, *self.outputs, *self.extra_outputs)


def plan_io(tensors: Iterable[IOTensor]) -> IOPlan:
    """Check an engine's I/O against the model contract; raise ValueError saying what differs."""
    tensors = list(tensors)
    inputs = [t for t in tensors if t.is_input]
    outputs = {t.name: t for t in tensors if not t.is_input}
    if [t.name for t in inputs] != [INPUT_NAME]:
        raise ValueError(f"engine inputs are {[t.name for t in inputs]}, expected ['{INPUT_NAME}']")
    inp = inputs[0]
    if (
        len(inp.shape) != 4
        or any(d <= 0 for d in inp.shape)
        or not is_input_geometry(inp.shape[2], inp.shape[3])
    ):
        raise ValueError(
            f"engine input '{INPUT_NAME}' has shape {list(inp.shape)}, expected static {input_geometries()}"
        )
    if inp.dtype != np.float32:
        raise ValueError(
            f"engine input '{INPUT_NAME}' is {inp.dtype}, expected float32 (keep FP32 I/O when exporting)"
        )
    missing = [n for n in OUTPUT_NAMES if n not in outputs]
    if missing:
        raise ValueError(f"engine lacks outputs {missing} (has {sorted(outputs)})")
    for name, tensor in outputs.items():
        if any(d <= 0 for d in tensor.shape):
            raise ValueError(f"engine output '{name}' has a dynamic shape {list(tensor.shape)}")
    extras = tuple(t for name, t in outputs.items() if name not in OUTPUT_NAMES)
    return IOPlan(inp, tuple(outputs[n] for n in OUTPUT_NAMES), extras)


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0, 26); numbers compared as numbers, never as strings."""
    numbers = re.findall(r"\d+", str(text))
    if not numbers:
        raise ValueError(f"cannot read a version number from {text!r}")
    return tuple(int(n) for n in numbers)


def same_tensorrt_release(built: str, here: str) -> bool:
    """Engines load only on the TensorRT release that built them: major.minor.patch must match.

    The build number (4th field) is ignored; export.engine uses this same rule for reuse.
    """
    return parse_version(built)[:3] == parse_version(here)[:3]


def _capability(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[1]))
    parts = parse_version(str(value))
    return (parts[0], parts[1] if len(parts) > 1 else 0)


def _section(manifest: Mapping[str, object], key: str) -> Mapping[str, object]:
    """A manifest's section (engine, source) as a mapping; empty when absent or not a table."""
    section = manifest.get(key)
    return section if isinstance(section, Mapping) else {}


def engine_mismatches(
    manifest: Mapping[str, object],
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: object,
    onnx_sha256: str | None = None,
    sm_count: int | None = None,
    memory_gib: int | None = None,
) -> list[str]:
    """Differences between an engine manifest (as a dict) and this machine; empty = usable.

    The engine section must match exactly: engines are tied to the TensorRT version and GPU.
    SM count and memory (which tell Orin Nano, NX and AGX apart) are compared where both
    the manifest and this machine know them.
    """
    problems: list[str] = []
    if manifest.get("kind") != "engine":
        problems.append(f"manifest kind is {manifest.get('kind')!r}, expected 'engine'")
    engine = _section(manifest, "engine")
    built = engine.get("tensorrt_version")
    if built is None:
        problems.append("manifest does not record the TensorRT version the engine was built with")
    elif not same_tensorrt_release(str(built), tensorrt_version):
        problems.append(f"engine built with TensorRT {built}, this machine has {tensorrt_version}")
    if engine.get("gpu_name") and engine["gpu_name"] != gpu_name:
        problems.append(
            f"engine built for GPU {engine['gpu_name']!r}, this machine has {gpu_name!r}"
        )
    built_cc, here_cc = (
        _capability(engine.get("compute_capability")),
        _capability(compute_capability),
    )
    if built_cc is None:
        problems.append("manifest does not record the GPU compute capability")
    elif built_cc != here_cc:
        problems.append(f"engine built for compute capability {built_cc}, this GPU is {here_cc}")
    for key, here, what in (
        ("sm_count", sm_count, "SMs"),
        ("memory_gib", memory_gib, "GiB of GPU memory"),
    ):
        recorded = engine.get(key)
        if recorded is not None and here is not None and int_of(recorded) != here:
            problems.append(f"engine built for a GPU with {recorded} {what}, this one has {here}")
    if onnx_sha256 is not None:
        source = _section(manifest, "source")
        built_from = source.get("onnx_sha256")
        if built_from != onnx_sha256:
            problems.append(
                f"engine was built from ONNX {str(built_from)[:12]}..., the ONNX beside it is {onnx_sha256[:12]}..."
            )
    return [f"{p}; {REBUILD_ENGINE}" for p in problems]
