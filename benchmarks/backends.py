"""Which runners a latency run measures: `--backend NAME[:MODEL]`, `--model`, `--precision`, `--suite`.

Rules (also in docs/BENCHMARKS.md):

1. `--backend NAME:MODEL` names the model inline; this always wins.
2. Backends without an inline model take the `--model` paths in order (the first such backend the
   first `--model`, ...). A single `--model` is shared by all of them. Any other count is an error.
3. With no model at all, the demo model for (backend, `--precision`) is used: models/demo/model.onnx,
   model.fp16.onnx, model.int8-cpu.onnx for onnxruntime, checkpoint.pt for torch. TensorRT engines are
   built on the device (`python -m export engine`), so a tensorrt backend always needs a model path.
4. `--suite NAME` adds a named set (e.g. `demo`: torch eager FP32 and the four demo ONNX models).

The same backend may appear several times with different models; labels are `NAME:FILE` so they stay
unique and readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.errors import BenchmarkError

DEMO_DIR = Path("models/demo")

# (backend, precision) -> the demo model a bare `--backend NAME --precision P` measures
DEFAULT_MODELS: dict[tuple[str, str], str] = {
    ("onnxruntime", "fp32"): "model.onnx",
    ("onnxruntime", "fp16"): "model.fp16.onnx",
    ("onnxruntime", "int8"): "model.int8-cpu.onnx",
    ("torch", "fp32"): "checkpoint.pt",
}

SUITES: dict[str, tuple[str, ...]] = {
    # RESULTS.md: PyTorch eager FP32, ONNX Runtime FP32, FP16 and both INT8 models side by side
    "demo": (
        "torch:checkpoint.pt",
        "onnxruntime:model.onnx",
        "onnxruntime:model.fp16.onnx",
        "onnxruntime:model.int8.onnx",
        "onnxruntime:model.int8-cpu.onnx",
    ),
    # the kiosk's choice on a CPU: FP32 against the CPU INT8 model
    "demo-cpu": ("onnxruntime:model.onnx", "onnxruntime:model.int8-cpu.onnx"),
}

# Where a runner computes, for choosing the peak it is compared with. A lookup, not a branch per backend:
# a runner that knows better can expose `compute_device` ('cpu' | 'gpu'), which wins (see device_of).
RUNNER_DEVICE: dict[str, str] = {"tensorrt": "gpu"}

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class BackendSpec:
    """One runner to measure: registry name, model file, the label it is reported under."""

    name: str
    model: Path

    @property
    def label(self) -> str:
        return f"{self.name}:{self.model.name}"


def split_backend(text: str) -> tuple[str, str | None]:
    """'onnxruntime:models/x.onnx' -> ('onnxruntime', 'models/x.onnx'); 'torch' -> ('torch', None)."""
    name, sep, model = text.partition(":")
    name = name.strip()
    if not name:
        raise BenchmarkError(
            f"--backend {text!r}: expected NAME or NAME:MODEL, e.g. onnxruntime:models/demo/model.onnx"
        )
    return name, (model.strip() or None) if sep else None


def default_model(name: str, precision: str | None, demo_dir: Path = DEMO_DIR) -> Path:
    """The demo model for a backend and precision, or a BenchmarkError saying to pass one."""
    key = (name, precision or "fp32")
    if key not in DEFAULT_MODELS:
        known = ", ".join(f"{b} {p}" for b, p in DEFAULT_MODELS)
        raise BenchmarkError(
            f"no default model for backend {name!r} at precision {key[1]!r} (defaults exist for: {known}); "
            f"give one with --backend {name}:PATH or --model PATH"
        )
    return demo_dir / DEFAULT_MODELS[key]


def resolve_backends(
    backends: list[str],
    models: list[str],
    precision: str | None = None,
    suite: str | None = None,
    demo_dir: Path = DEMO_DIR,
) -> list[BackendSpec]:
    """Turn the command-line options into the list of runners to measure, in the order given."""
    if precision is not None and precision not in PRECISIONS:
        raise BenchmarkError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    parsed = [split_backend(b) for b in backends]
    if suite is not None:
        if suite not in SUITES:
            raise BenchmarkError(f"--suite {suite!r}: choose one of {', '.join(SUITES)}")
        parsed += [
            (name, str(demo_dir / model))
            for name, model in (split_backend(b) for b in SUITES[suite])
        ]
    if not parsed:
        parsed = [("onnxruntime", None)]
    bare = [i for i, (_, model) in enumerate(parsed) if model is None]
    if models and len(models) not in (1, len(bare)):
        raise BenchmarkError(
            f"{len(models)} --model paths for {len(bare)} backends without an inline model: give one --model per "
            "such backend (in order), a single --model for all of them, or write --backend NAME:MODEL"
        )
    specs: list[BackendSpec] = []
    for i, (name, model) in enumerate(parsed):
        if model is None:
            model = (
                models[bare.index(i) if len(models) > 1 else 0]
                if models
                else str(default_model(name, precision, demo_dir))
            )
        specs.append(BackendSpec(name=name, model=Path(model)))
    labels = [s.label for s in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise BenchmarkError(
            f"backend {duplicates} is listed twice: each backend:model pair can be measured once per run"
        )
    return specs


def device_of(runner) -> str:
    """'gpu' or 'cpu': a runner's own `compute_device` attribute when it says one, else RUNNER_DEVICE, else cpu."""
    declared = getattr(runner, "compute_device", None)
    if declared in ("cpu", "gpu"):
        return declared
    return RUNNER_DEVICE.get(runner.name, "cpu")
