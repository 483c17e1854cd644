"""Build a TensorRT engine from an ONNX model on the machine that will run it.

One code path for TensorRT 10.x and 11.x: a strongly typed network whose
precision comes from the ONNX (FP32, the FP16 ONNX, or the INT8 Q/DQ ONNX).
The legacy FP16 builder flag (weak typing) is used only when asked for, and
only on 10.x. Everything that can be decided without a GPU lives in
export.engine_plan and is tested there; this module gathers facts and calls
NVIDIA's documented Python API (tensorrt imported lazily).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export._deps import require
from export.engine_plan import (
    BuildDecision,
    check_builder_options,
    decide_build,
    engine_facts,
    keyed_cache_path,
    profile_shapes,
    read_l4t,
    timing_cache_key,
)
from export.errors import DependencyError, EngineError
from export.onnx_utils import detect_precision, get_metadata, io_shapes, load_onnx, opset_of
from gaitmil.manifest import (
    Manifest,
    ManifestError,
    manifest_path_for,
    read_manifest,
    sha256_file,
    write_manifest,
)

DEFAULT_WORKSPACE_MIB = 1024
DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gaitmil" / "tensorrt"


@dataclass
class EngineConfig:
    onnx: Path
    out: Path
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    timing_cache: Path | None = None  # file or folder; the TensorRT/device key is added to the name
    force: bool = False
    reuse_if_current: bool = False
    legacy_fp16: bool = False


@dataclass
class EngineResult:
    decision: BuildDecision
    engine_path: Path
    manifest_path: Path | None = None
    timing_cache_path: Path | None = None


def _device_cuda_python(index: int) -> tuple[str, str]:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python layout
    err, props = cudart.cudaGetDeviceProperties(index)
    if int(err) != 0:
        raise EngineError(f"cudaGetDeviceProperties({index}) failed with CUDA error {err}")
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\x00 "), f"{props.major}.{props.minor}"


def _device_pycuda(index: int) -> tuple[str, str]:
    import pycuda.driver as driver

    driver.init()
    device = driver.Device(index)
    major, minor = device.compute_capability()
    return device.name(), f"{major}.{minor}"


def gpu_identity(index: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') through cuda-python, else pycuda."""
    errors = []
    for probe in (_device_cuda_python, _device_pycuda):
        try:
            return probe(index)
        except ImportError as exc:
            errors.append(str(exc))
    raise DependencyError(
        "cannot query the GPU: neither cuda-python nor pycuda is installed "
        f"({'; '.join(errors)}); pip install 'gaitmil-edge[tensorrt]' (cuda-python) or "
        "'gaitmil-edge[pycuda]'"
    )


def parser_errors(parser: Any) -> list[str]:
    """The ONNX parser's errors, one line per node."""
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        node_name = error.node_name() if hasattr(error, "node_name") else ""
        operator = error.node_operator() if hasattr(error, "node_operator") else ""
        lines.append(f"node {error.node()} {node_name!r} ({operator}): {error.desc()} [{error.code()}]")
    return lines


def _read_existing_manifest(engine: Path) -> dict[str, Any] | None:
    try:
        return read_manifest(manifest_path_for(engine)).to_dict()
    except ManifestError:
        return None


def build_engine(config: EngineConfig) -> EngineResult:
    """Build (or reuse, or refuse to overwrite) the engine for `config.onnx` on this machine."""
    trt = require("tensorrt")
    onnx_path, engine_path = Path(config.onnx), Path(config.out)
    model = load_onnx(onnx_path)
    check_builder_options(trt.__version__, config.legacy_fp16)
    inputs, _ = io_shapes(model)
    profile = profile_shapes(inputs)
    gpu_name, capability = gpu_identity()
    precision = get_metadata(model).get("precision") or detect_precision(model)
    current = engine_facts(
        tensorrt_version=trt.__version__, gpu_name=gpu_name, compute_capability=capability,
        l4t=read_l4t(), precision=precision, onnx_sha256=sha256_file(onnx_path),
        input_shapes={k: list(v[0]) for k, v in profile.items()},
    )
    decision = decide_build(
        engine_path.exists(), _read_existing_manifest(engine_path), current,
        force=config.force, reuse_if_current=config.reuse_if_current,
        onnx=str(onnx_path), engine=str(engine_path),
    )
    if decision.action == "refuse":
        raise EngineError(f"{engine_path} exists and differs from what would be built:\n  "
                          + "\n  ".join(decision.reasons))
    if decision.action == "reuse":
        return EngineResult(decision, engine_path, manifest_path_for(engine_path))

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None and not config.legacy_fp16:
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        raise EngineError(f"TensorRT's ONNX parser rejected {onnx_path}:\n  " + "\n  ".join(parser_errors(parser))
                          + "\nrun `python -m export audit` on it and re-export")

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_mib) << 20)
    if config.legacy_fp16:
        builder_config.set_flag(trt.BuilderFlag.FP16)
    optimization_profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        optimization_profile.set_shape(name, low, opt, high)
    builder_config.add_optimization_profile(optimization_profile)

    cache_path = keyed_cache_path(config.timing_cache or DEFAULT_CACHE_DIR / "timing.cache",
                                  timing_cache_key(trt.__version__, gpu_name, capability))
    cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
    timing_cache = builder_config.create_timing_cache(cache_bytes)
    builder_config.set_timing_cache(timing_cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise EngineError(f"TensorRT could not build an engine from {onnx_path} (see the log above); "
                          "try a larger --workspace or check the ONNX with `python -m export audit`")
    try:
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = engine_path.with_name(engine_path.name + ".tmp")
        tmp.write_bytes(bytes(serialized))
        os.replace(tmp, engine_path)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(builder_config.get_timing_cache().serialize()))
    except OSError as exc:
        raise EngineError(f"cannot write {exc.filename} ({exc.strerror}); choose another --out") from exc

    onnx_meta = get_metadata(model)
    manifest = Manifest(
        model_id=str(onnx_meta.get("model_id")),
        kind="engine",
        precision="fp16" if config.legacy_fp16 else precision,
        target="tensorrt" if precision == "int8" else None,
        files={engine_path.name: sha256_file(engine_path)},
        input_shapes=current["input_shapes"],
        opset=opset_of(model),
        engine={k: current[k] for k in ("tensorrt_version", "gpu_name", "compute_capability", "l4t")},
        source={"onnx": onnx_path.name, "onnx_sha256": current["onnx_sha256"],
                "model_id": onnx_meta.get("model_id")},
        extra={"legacy_fp16": config.legacy_fp16, "workspace_mib": config.workspace_mib},
    )
    manifest_path = write_manifest(manifest_path_for(engine_path), manifest)
    return EngineResult(decision, engine_path, manifest_path, cache_path)
