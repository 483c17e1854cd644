"""Decisions about TensorRT engines that need no GPU: versions, cache keys, manifest checks, rebuilds.

Pure functions over plain values, tested on any machine; export.engine
(which needs tensorrt) only gathers the facts and applies these decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.runners.trt_plan import same_tensorrt_release
from export.errors import EngineError

REBUILD_HINT = (
    "rebuild it on this machine: python -m export engine --onnx {onnx} --out {engine} --force"
)


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30); compares correctly where strings do not ('10.10' > '10.9')."""
    numbers = re.findall(r"\d+", str(text))
    if not numbers:
        raise EngineError(f"cannot read a version number from {text!r}")
    return tuple(int(n) for n in numbers)


def legacy_fp16_allowed(tensorrt_version: str) -> bool:
    """BuilderFlag.FP16 (weak typing) exists on TensorRT 10.x only; 11.0 removed it."""
    return parse_version(tensorrt_version)[0] == 10


def check_builder_options(
    tensorrt_version: str, legacy_fp16: bool, precision: str | None = None
) -> None:
    """Refuse option combinations this TensorRT or this ONNX cannot honour (never fall back silently)."""
    major = parse_version(tensorrt_version)[0]
    if major < 10:
        raise EngineError(
            f"TensorRT {tensorrt_version} is too old: this project needs TensorRT 10 or later "
            "(JetPack 6.x ships 10.3); upgrade JetPack or TensorRT"
        )
    if legacy_fp16 and not legacy_fp16_allowed(tensorrt_version):
        raise EngineError(
            f"--legacy-fp16 needs TensorRT 10.x, this is {tensorrt_version} (the flag was removed in 11.0); "
            "build from the FP16 ONNX instead: python -m export fp16 model.onnx --out model.fp16.onnx"
        )
    if legacy_fp16 and precision == "int8":
        raise EngineError(
            "--legacy-fp16 does not apply to an INT8 Q/DQ model: its precision is fixed by the Q/DQ nodes; "
            "build it without --legacy-fp16 (or build the FP16 ONNX for FP16)"
        )


def parse_l4t(text: str) -> str | None:
    """L4T release from /etc/nv_tegra_release ('# R36 (release), REVISION: 4.3, ...') -> '36.4.3'."""
    match = re.search(r"R(\d+)\s*\(\w+\),\s*REVISION:\s*([\d.]+)", text)
    if not match:
        return None
    return f"{match.group(1)}.{match.group(2)}"


def read_l4t(path: str | Path = "/etc/nv_tegra_release") -> str | None:
    """The L4T release of this machine, or None where the file does not exist (not a Jetson)."""
    try:
        return parse_l4t(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def timing_cache_key(
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    *,
    sm_count: int | None = None,
    memory_gib: int | None = None,
    l4t: str | None = None,
) -> str:
    """A key naming everything a timing cache is only valid for: TensorRT version and device.

    Orin Nano, NX and AGX share a GPU name and compute capability; their SM count and
    memory tell them apart, and the L4T release names the CUDA/driver stack.
    """
    key = f"trt{'.'.join(map(str, parse_version(tensorrt_version)))}-{_slug(gpu_name)}-sm{_slug(compute_capability)}"
    if sm_count is not None:
        key += f"-{int(sm_count)}sm"
    if memory_gib is not None:
        key += f"-{int(memory_gib)}gib"
    if l4t:
        key += f"-l4t{_slug(l4t)}"
    return key


def keyed_cache_path(path: str | Path, key: str) -> Path:
    """Insert `key` into a cache file name: 'cache/timing.cache' -> 'cache/timing.<key>.cache'.

    A directory (existing, or a path ending in '/') gets 'timing.<key>.cache' inside it.
    """
    raw = str(path)
    path = Path(path)
    if raw.endswith(("/", "\\")) or path.is_dir():
        return path / f"timing.{key}.cache"
    suffix = path.suffix or ".cache"
    return path.with_name(f"{path.stem}.{key}{suffix}")


def profile_shapes(input_shapes: dict[str, list[Any]]) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Static optimisation profile: min = opt = max = the ONNX input's fixed shape."""
    profile = {}
    for name, dims in input_shapes.items():
        if not dims or any(not isinstance(d, int) or d <= 0 for d in dims):
            raise EngineError(
                f"ONNX input {name!r} has dims {dims}; the engine needs a static shape: "
                "re-export with fixed --batch and --frames"
            )
        shape = tuple(int(d) for d in dims)
        profile[name] = (shape, shape, shape)
    return profile


def engine_facts(
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    l4t: str | None,
    precision: str,
    onnx_sha256: str,
    input_shapes: dict[str, list[int]],
    sm_count: int | None = None,
    memory_gib: int | None = None,
    legacy_fp16: bool = False,
) -> dict[str, Any]:
    """What an engine is bound to; stored in its manifest and compared before reuse.

    `precision` is the engine's effective precision: 'fp16' for a --legacy-fp16 build.
    """
    return {
        "tensorrt_version": str(tensorrt_version),
        "gpu_name": str(gpu_name),
        "compute_capability": str(compute_capability),
        "sm_count": None if sm_count is None else int(sm_count),
        "memory_gib": None if memory_gib is None else int(memory_gib),
        "l4t": l4t,
        "precision": precision,
        "legacy_fp16": bool(legacy_fp16),
        "onnx_sha256": onnx_sha256,
        "input_shapes": {k: [int(d) for d in v] for k, v in input_shapes.items()},
    }


ENGINE_SECTION = (
    "tensorrt_version",
    "gpu_name",
    "compute_capability",
    "sm_count",
    "memory_gib",
    "l4t",
)


def manifest_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """The comparable facts of an engine manifest (dict form of gaitcontract.manifest.Manifest)."""
    engine = manifest.get("engine") or {}
    facts = {key: engine.get(key) for key in ENGINE_SECTION}
    facts.update(
        {
            "precision": manifest.get("precision"),
            "legacy_fp16": bool((manifest.get("extra") or {}).get("legacy_fp16", False)),
            "onnx_sha256": (manifest.get("source") or {}).get("onnx_sha256"),
            "input_shapes": manifest.get("input_shapes"),
        }
    )
    return facts


_WHY = {
    "tensorrt_version": "engines only load on the TensorRT version that built them",
    "gpu_name": "engines are tuned for the GPU that built them",
    "compute_capability": "engines hold kernels for one compute capability",
    "sm_count": "another GPU model (Orin Nano, NX and AGX differ in SM count)",
    "memory_gib": "another GPU model (Orin Nano, NX and AGX differ in memory)",
    "l4t": "the JetPack/L4T release changed (CUDA and TensorRT with it)",
    "precision": "the requested precision differs",
    "legacy_fp16": "--legacy-fp16 (weakly typed FP16) was toggled",
    "onnx_sha256": "the ONNX model changed since the engine was built",
    "input_shapes": "the input shape (batch, frames) differs",
}


def _same_fact(key: str, recorded: Any, current: Any) -> bool:
    if key == "tensorrt_version" and recorded and current:
        return same_tensorrt_release(
            str(recorded), str(current)
        )  # the runner's rule: build number ignored
    return recorded == current


def compare_engine_manifest(
    manifest: dict[str, Any],
    current: dict[str, Any],
    onnx: str = "MODEL.onnx",
    engine: str = "model.engine",
) -> list[str]:
    """Differences between an engine's manifest and this machine/model; empty when it is current.

    Each entry says what differs, why it matters and how to rebuild.
    """
    recorded = manifest_facts(manifest)
    hint = REBUILD_HINT.format(onnx=onnx, engine=engine)
    problems = []
    for key, why in _WHY.items():
        if not _same_fact(key, recorded.get(key), current.get(key)):
            problems.append(
                f"{key}: engine has {recorded.get(key)!r}, this machine/model has "
                f"{current.get(key)!r} ({why}); {hint}"
            )
    return problems


@dataclass
class BuildDecision:
    action: str  # "build" | "reuse" | "refuse"
    reasons: list[str] = field(default_factory=list)


def decide_build(
    engine_exists: bool,
    manifest: dict[str, Any] | None,
    current: dict[str, Any],
    *,
    force: bool = False,
    reuse_if_current: bool = False,
    onnx: str = "MODEL.onnx",
    engine: str = "model.engine",
    integrity_problem: str | None = None,
) -> BuildDecision:
    """Which file to (re)build: reuse a current engine, rebuild a stale one, or refuse to overwrite.

    - no engine yet: build;
    - `--force`: build;
    - `--reuse-if-current` (the boot-time systemd oneshot): reuse when the
      manifest matches this machine and ONNX and the engine file matches
      its manifest's sha256 (`integrity_problem` is None), else rebuild;
    - otherwise an existing engine that differs (or has no readable
      manifest) is not overwritten: refuse with the differences; an
      identical one is rebuilt, since the user asked for a build.
    """
    if not engine_exists or force:
        return BuildDecision("build", ["no engine yet" if not engine_exists else "--force"])
    mismatches = (
        compare_engine_manifest(manifest, current, onnx, engine)
        if manifest is not None
        else [f"{engine} has no readable manifest, so nothing says what it was built for"]
    )
    if integrity_problem is not None:
        mismatches.append(
            f"{engine} does not match its manifest ({integrity_problem}): replaced or truncated"
        )
    if reuse_if_current:
        return (
            BuildDecision("reuse", ["engine is current"])
            if not mismatches
            else BuildDecision("build", mismatches)
        )
    if mismatches:
        return BuildDecision("refuse", mismatches + [f"pass --force to overwrite {engine}"])
    return BuildDecision("build", ["engine is current; rebuilding as asked"])
