"""Build a TensorRT engine from an ONNX model on the machine that will run it.

One code path for TensorRT 10.x and 11.x: a strongly typed network whose
precision comes from the ONNX (FP32, the FP16 ONNX, or the INT8 Q/DQ ONNX).
The legacy FP16 builder flag (weak typing) is used only when asked for, and
only on 10.x. Everything that can be decided without a GPU lives in
export.engine_plan and is tested there; this module gathers facts and calls
NVIDIA's documented Python API (tensorrt imported lazily).

A kiosk builds its engine at boot (gaitmil-engine.service) from a base install:
no torch and no `onnx` package. The ONNX's facts (model id, precision, input
shape, opset) come from its manifest, else from ONNX Runtime, and the input
shape is checked against the network TensorRT parsed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export._deps import require
from export.engine_facts import gpu_identity, onnx_facts
from export.engine_plan import (
    ENGINE_SECTION,
    BuildDecision,
    check_builder_options,
    decide_build,
    engine_facts,
    keyed_cache_path,
    profile_shapes,
    read_l4t,
    timing_cache_key,
)
from export.errors import EngineError
from gaitcontract.manifest import (
    Manifest,
    ManifestError,
    manifest_path_for,
    read_manifest,
    verify_artifact,
    write_manifest,
)

DEFAULT_WORKSPACE_MIB = 1024
DEFAULT_CACHE_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gaitmil" / "tensorrt"
)


@dataclass
class EngineConfig:
    onnx: Path
    out: Path
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    # file or folder (an existing one, or a str ending in "/"); the TensorRT/device key is added
    timing_cache: Path | str | None = None
    force: bool = False
    reuse_if_current: bool = False
    legacy_fp16: bool = False


@dataclass
class EngineResult:
    decision: BuildDecision
    engine_path: Path
    manifest_path: Path | None = None
    timing_cache_path: Path | None = None
    # what the caller should tell the user (a rejected or unsaved timing cache); the CLI prints them
    notes: list[str] = field(default_factory=list)


def parser_errors(parser: Any) -> list[str]:
    """The ONNX parser's errors, one line per node."""
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        node_name = error.node_name() if hasattr(error, "node_name") else ""
        operator = error.node_operator() if hasattr(error, "node_operator") else ""
        lines.append(
            f"node {error.node()} {node_name!r} ({operator}): {error.desc()} [{error.code()}]"
        )
    return lines


def _read_existing_manifest(engine: Path) -> dict[str, Any] | None:
    try:
        return read_manifest(manifest_path_for(engine)).to_dict()
    except ManifestError:
        return None


def _integrity_problem(engine: Path, manifest: dict[str, Any] | None) -> str | None:
    """None when the engine file matches its manifest's sha256, else what differs."""
    if manifest is None or not engine.is_file():
        return None
    try:
        verify_artifact(engine, manifest_path_for(engine))
    except ManifestError as exc:
        return str(exc).split(";")[0]
    return None


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _attach_timing_cache(builder_config: Any, cache_path: Path, notes: list[str]) -> None:
    """Use the cached timings when TensorRT accepts them, else start from an empty cache.

    set_timing_cache returns False for a cache from another device or TensorRT; a build
    then goes on with a fresh cache (it is only slower), and says so.
    """
    data = b""
    if cache_path.is_file():
        try:
            data = cache_path.read_bytes()
        except OSError as exc:
            notes.append(
                f"timing cache {cache_path} unreadable ({exc.strerror}); starting a new one"
            )
    if data:
        cache = builder_config.create_timing_cache(data)
        if cache is not None and builder_config.set_timing_cache(cache, ignore_mismatch=False):
            return
        notes.append(
            f"TensorRT rejected the timing cache {cache_path} (another device or TensorRT "
            "version, or corrupt); starting a new one"
        )
    cache = builder_config.create_timing_cache(b"")
    if cache is None or not builder_config.set_timing_cache(cache, ignore_mismatch=False):
        notes.append("TensorRT could not set an empty timing cache; building without one")


def _save_timing_cache(builder_config: Any, cache_path: Path, notes: list[str]) -> Path | None:
    """Best effort: a cache that cannot be saved only makes the next build slower."""
    cache = builder_config.get_timing_cache()
    if cache is None:
        notes.append("no timing cache to save")
        return None
    try:
        atomic_write(cache_path, bytes(cache.serialize()))
    except OSError as exc:
        notes.append(f"timing cache not saved to {cache_path} ({exc.strerror})")
        return None
    return cache_path


def _network_inputs(network: Any) -> dict[str, list[int]]:
    return {
        network.get_input(i).name: [int(d) for d in network.get_input(i).shape]
        for i in range(network.num_inputs)
    }


def build_engine(config: EngineConfig) -> EngineResult:
    """Build (or reuse, or refuse to overwrite) the engine for `config.onnx` on this machine."""
    trt = require("tensorrt")
    onnx_path, engine_path = Path(config.onnx), Path(config.out)
    if not onnx_path.is_file():
        raise EngineError(
            f"ONNX model {onnx_path} does not exist; export one with `python -m export onnx`"
        )
    onnx_bytes = onnx_path.read_bytes()
    facts = onnx_facts(onnx_path, onnx_bytes)
    check_builder_options(trt.__version__, config.legacy_fp16, facts.precision)
    if not facts.model_id:
        raise EngineError(
            f"{onnx_path} names no model id (neither its manifest nor its metadata): "
            "re-export it with `python -m export onnx`, which writes both"
        )
    profile = profile_shapes(facts.input_shapes)
    gpu = gpu_identity(0)  # the builder uses the runtime's current device
    l4t = read_l4t()
    precision = "fp16" if config.legacy_fp16 else facts.precision  # what the engine computes in
    current = engine_facts(
        tensorrt_version=trt.__version__,
        gpu_name=gpu.name,
        compute_capability=gpu.capability_text,
        sm_count=gpu.sm_count,
        memory_gib=gpu.memory_gib,
        l4t=l4t,
        precision=precision,
        legacy_fp16=config.legacy_fp16,
        onnx_sha256=facts.sha256,
        input_shapes={k: list(v[0]) for k, v in profile.items()},
    )
    existing = _read_existing_manifest(engine_path)
    decision = decide_build(
        engine_path.exists(),
        existing,
        current,
        force=config.force,
        reuse_if_current=config.reuse_if_current,
        onnx=str(onnx_path),
        engine=str(engine_path),
        integrity_problem=_integrity_problem(engine_path, existing),
    )
    if decision.action == "refuse":
        raise EngineError(
            f"{engine_path} exists and differs from what would be built:\n  "
            + "\n  ".join(decision.reasons)
        )
    if decision.action == "reuse":
        return EngineResult(decision, engine_path, manifest_path_for(engine_path))

    notes: list[str] = []
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None and not config.legacy_fp16:
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes, str(onnx_path)):
        raise EngineError(
            f"TensorRT's ONNX parser rejected {onnx_path}:\n  "
            + "\n  ".join(parser_errors(parser))
            + "\nrun `python -m export audit` on it and re-export"
        )
    parsed = _network_inputs(network)
    if parsed != current["input_shapes"]:
        raise EngineError(
            f"{onnx_path}: TensorRT parsed inputs {parsed}, the ONNX declares "
            f"{current['input_shapes']}; re-export it with `python -m export onnx`"
        )

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(
        trt.MemoryPoolType.WORKSPACE, int(config.workspace_mib) << 20
    )
    # TF32 is on by default and rounds FP32 matmul/conv inputs to 10-bit mantissas: an "fp32"
    # engine (and the FP32 islands of an FP16 one) must compute in FP32
    builder_config.clear_flag(trt.BuilderFlag.TF32)
    if config.legacy_fp16:
        builder_config.set_flag(trt.BuilderFlag.FP16)
    optimization_profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        optimization_profile.set_shape(name, low, opt, high)
    builder_config.add_optimization_profile(optimization_profile)

    cache_path = keyed_cache_path(
        config.timing_cache or DEFAULT_CACHE_DIR / "timing.cache",
        timing_cache_key(
            trt.__version__,
            gpu.name,
            gpu.capability_text,
            sm_count=gpu.sm_count,
            memory_gib=gpu.memory_gib,
            l4t=l4t,
        ),
    )
    _attach_timing_cache(builder_config, cache_path, notes)

    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise EngineError(
            f"TensorRT could not build an engine from {onnx_path} (see the log above); "
            "try a larger --workspace or check the ONNX with `python -m export audit`"
        )
    engine_bytes = bytes(serialized)
    manifest = Manifest(
        model_id=str(facts.model_id),
        kind="engine",
        precision=precision,
        target=(facts.target or "tensorrt") if precision == "int8" else None,
        files={engine_path.name: hashlib.sha256(engine_bytes).hexdigest()},
        input_shapes=current["input_shapes"],
        opset=facts.opset,
        engine={k: current[k] for k in ENGINE_SECTION},
        source={"onnx": onnx_path.name, "onnx_sha256": facts.sha256, "model_id": facts.model_id},
        extra={
            "legacy_fp16": config.legacy_fp16,
            "tf32": False,
            "workspace_mib": config.workspace_mib,
        },
    )
    manifest_path = manifest_path_for(engine_path)
    try:
        # engine, then its manifest right away: a crash in between leaves a pair whose sha256
        # differs, which --reuse-if-current rebuilds and the runner refuses
        atomic_write(engine_path, engine_bytes)
        tmp_manifest = manifest_path.with_name(manifest_path.name + ".tmp")
        write_manifest(tmp_manifest, manifest)
        os.replace(tmp_manifest, manifest_path)
    except OSError as exc:
        raise EngineError(
            f"cannot write {exc.filename} ({exc.strerror}); choose another --out"
        ) from exc
    saved = _save_timing_cache(builder_config, cache_path, notes)
    return EngineResult(decision, engine_path, manifest_path, saved, notes)
