"""How close a latency figure is to the hardware: MACs from the ONNX graph, the machine's peak, the fraction.

- `count_macs(onnx_path)`: multiply-accumulates of every Conv / Gemm / MatMul (and their quantized forms)
  from the graph's own shapes after ONNX shape inference. Elementwise ops, pooling and softmaxes are not
  counted: they are memory-bound and small next to the convolutions of a ResNet backbone.
- `matmul_probe(...)`: the FP32 GFLOP/s a well-tuned matrix product reaches on this CPU with the same
  number of threads as the benchmark (a 2048x2048 product by default). That is the practical peak
  a convolution engine can hope for on a CPU.
- `declared_peak(board, precision)`: Jetson peaks are declared (NVIDIA's published figures), not measured: a probe
  on the GPU would need CUDA libraries the kiosk does not otherwise install.

achieved GFLOP/s = 2 * MACs per walk * walks / compute time (one MAC = two floating-point operations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.errors import BenchmarkError


@dataclass
class MacCount:
    """MACs of one model run (the whole batch) and per walk, by operator type."""

    total: int
    batch: int
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: list[str] = field(default_factory=list)  # compute ops whose shapes were not static

    @property
    def per_walk(self) -> int:
        return self.total // max(self.batch, 1)

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "batch": self.batch,
            "per_walk": self.per_walk,
            "by_op": dict(self.by_op),
            "uncounted": list(self.uncounted),
        }


# op type -> (index of the data input, index of the weight / second operand input)
_CONV_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}


def _static_shapes(model) -> dict[str, tuple[int, ...]]:
    """Name -> static shape for every tensor whose shape inference found all dimensions."""
    shapes: dict[str, tuple[int, ...]] = {}
    graph = model.graph
    for init in graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = info.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _node_macs(node, shapes: dict[str, tuple[int, ...]]) -> int | None:
    """MACs of one node, or None when a shape it needs is not static."""
    if node.op_type in _CONV_OPS:
        _, w_index = _CONV_OPS[node.op_type]
        weight, out = shapes.get(node.input[w_index]), shapes.get(node.output[0])
        if weight is None or out is None:
            return None
        # each output element sums over (C_in / groups) * kernel window: weight is [C_out, C_in/g, *k]
        return _prod(out) * _prod(weight[1:])
    a_index, b_index = _MATMUL_OPS[node.op_type]
    a, out = shapes.get(node.input[a_index]), shapes.get(node.output[0])
    if a is None or out is None:
        return None
    if node.op_type == "Gemm":
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        k = a[0] if trans_a else a[1]
    else:
        k = a[-1]  # numpy matmul semantics: contraction over A's last axis
    return _prod(out) * int(k)


def onnx_available() -> bool:
    """Whether `onnx` can be imported: a kiosk venv has only the base install (no onnx, no torch)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def count_macs(onnx_path: str | Path) -> MacCount:
    """Count the MACs of Conv/Gemm/MatMul nodes (and quantized forms) in an ONNX model with static shapes."""
    import onnx  # export extra; only the limit computation needs it

    path = Path(onnx_path)
    if not path.is_file():
        raise BenchmarkError(
            f"ONNX model {path} does not exist: give the .onnx file the engine was built from (--onnx)"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # onnx raises several unrelated types for corrupt files
        raise BenchmarkError(
            f"cannot read {path} as an ONNX model ({exc}); re-export it with `python -m export onnx`"
        ) from exc
    shapes = _static_shapes(inferred)
    by_op: dict[str, int] = {}
    uncounted: list[str] = []
    for node in inferred.graph.node:
        if node.op_type not in _CONV_OPS and node.op_type not in _MATMUL_OPS:
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            uncounted.append(node.name or node.op_type)
            continue
        by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
    batch = 1
    if inferred.graph.input:
        first = shapes.get(inferred.graph.input[0].name)
        batch = first[0] if first else 1
    return MacCount(total=sum(by_op.values()), batch=batch, by_op=by_op, uncounted=uncounted)


# ---------------------------------------------------------------------------------------- probes

# Runs in a child process so the BLAS thread count can be fixed before numpy loads its BLAS.
_NUMPY_PROBE = """
import json, sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32); b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
times = []
for _ in range(repeats):
    t0 = time.perf_counter(); a @ b; times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def _probe_numpy(size: int, threads: int, repeats: int) -> list[float]:
    env_threads = str(threads)
    env = {
        "OPENBLAS_NUM_THREADS": env_threads,
        "OMP_NUM_THREADS": env_threads,
        "MKL_NUM_THREADS": env_threads,
    }
    done = subprocess.run(
        [sys.executable, "-c", _NUMPY_PROBE, str(size), str(repeats)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **env},
    )
    if done.returncode != 0:
        raise BenchmarkError(f"the numpy matmul probe failed: {done.stderr.strip()[-500:]}")
    return [float(t) for t in json.loads(done.stdout.strip().splitlines()[-1])]


def _probe_torch(size: int, threads: int, repeats: int) -> list[float]:
    try:
        import torch
    except ImportError as exc:
        raise BenchmarkError(
            "the torch matmul probe needs torch: pip install 'gaitmil-edge[train]' or use --probe numpy"
        ) from exc
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen)
        b = torch.randn(size, size, generator=gen)
        with torch.inference_mode():
            a @ b
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                a @ b
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return times


def _probe_onnxruntime(size: int, threads: int, repeats: int) -> list[float]:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edge.runners.onnxruntime import session_options

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul_probe",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    session = ort.InferenceSession(
        model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((size, size), dtype=np.float32) for n in ("a", "b")}
    session.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return times


PROBES: dict[str, Callable[[int, int, int], list[float]]] = {
    "numpy": _probe_numpy,
    "torch": _probe_torch,
    "onnxruntime": _probe_onnxruntime,
}


def matmul_probe(
    size: int = 2048, threads: int = 1, repeats: int = 5, probe: str = "numpy"
) -> dict:
    """FP32 GFLOP/s of a size x size matrix product on `threads` threads: best and median of `repeats`."""
    if probe not in PROBES:
        raise BenchmarkError(f"unknown matmul probe {probe!r}: choose one of {sorted(PROBES)}")
    if size < 1 or threads < 1 or repeats < 1:
        raise BenchmarkError(
            f"matmul probe needs positive size, threads and repeats (got {size}, {threads}, {repeats})"
        )
    times = sorted(PROBES[probe](size, threads, repeats))
    flops = 2.0 * size**3
    return {
        "probe": probe,
        "size": size,
        "threads": threads,
        "repeats": repeats,
        "best_gflops": flops / times[0] / 1e9,
        "median_gflops": flops / times[len(times) // 2] / 1e9,
    }


# ----------------------------------------------------------------------------------- declared peaks

# Dense peaks at the board's maximum power mode (derived from NVIDIA's
# published sparse figures). Keys are substrings of /proc/device-tree/model, most specific first.
# Values in GFLOP/s (FP16) or GOP/s (INT8). FP32 GPU peaks are not declared: pass --peak-gflops.
DECLARED_PEAKS: dict[str, dict[str, float]] = {
    "Orin Nano Super": {"fp16": 16_700.0, "int8": 33_000.0},
    "AGX Orin": {"fp16": 42_600.0, "int8": 85_000.0},
}


def board_key(board: str | None) -> str | None:
    """Which DECLARED_PEAKS entry a device-tree model string names (None when unknown)."""
    if not board:
        return None
    if "Orin Nano" in board and "Super" in board:
        return "Orin Nano Super"
    return next((key for key in DECLARED_PEAKS if key in board), None)


def declared_peak(board: str | None, precision: str) -> float | None:
    """Declared GPU peak in GFLOP/s (or GOP/s for INT8) for a Jetson board and precision, or None."""
    key = board_key(board)
    return DECLARED_PEAKS[key].get(precision) if key else None


def achieved_gflops(macs_per_walk: int, walks: int, seconds: float) -> float:
    """2 * MACs * walks / seconds, in GFLOP/s."""
    if seconds <= 0:
        raise BenchmarkError(f"compute time must be positive to get a throughput, got {seconds} s")
    return 2.0 * macs_per_walk * walks / seconds / 1e9
