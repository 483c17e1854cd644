"""How --backend / --model / --precision / --suite become the list of runners to measure."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.backends import BackendSpec, default_model, resolve_backends, split_backend
from benchmarks.errors import BenchmarkError


def test_inline_models_win_and_labels_are_name_and_file():
    specs = resolve_backends(
        ["onnxruntime:a/model.onnx", "torch:b/checkpoint.pt"], ["ignored-never-used.onnx"]
    )
    assert specs == [
        BackendSpec("onnxruntime", Path("a/model.onnx")),
        BackendSpec("torch", Path("b/checkpoint.pt")),
    ]
    assert [s.label for s in specs] == ["onnxruntime:model.onnx", "torch:checkpoint.pt"]


def test_models_pair_in_order_with_bare_backends():
    specs = resolve_backends(["torch", "onnxruntime:x.onnx", "onnxruntime"], ["c.pt", "y.onnx"])
    assert [(s.name, str(s.model)) for s in specs] == [
        ("torch", "c.pt"),
        ("onnxruntime", "x.onnx"),
        ("onnxruntime", "y.onnx"),
    ]


def test_one_model_is_shared():
    specs = resolve_backends(["onnxruntime"], ["m.int8.onnx"])
    assert specs[0].model == Path("m.int8.onnx")


def test_wrong_number_of_models_is_refused():
    with pytest.raises(BenchmarkError, match="2 --model paths for 3 backends"):
        resolve_backends(["torch", "onnxruntime", "onnxruntime"], ["a", "b"])


def test_demo_defaults_by_precision(tmp_path):
    assert resolve_backends([], [], demo_dir=tmp_path)[0] == BackendSpec(
        "onnxruntime", tmp_path / "model.onnx"
    )
    assert default_model("onnxruntime", "int8", tmp_path) == tmp_path / "model.int8-cpu.onnx"
    assert default_model("onnxruntime", "fp16", tmp_path) == tmp_path / "model.fp16.onnx"
    assert default_model("torch", None, tmp_path) == tmp_path / "checkpoint.pt"
    with pytest.raises(BenchmarkError, match="give one with --backend tensorrt:PATH"):
        default_model("tensorrt", "fp16", tmp_path)


def test_suite_demo_lists_the_results_table(tmp_path):
    specs = resolve_backends([], [], suite="demo", demo_dir=tmp_path)
    assert [s.label for s in specs] == [
        "torch:checkpoint.pt",
        "onnxruntime:model.onnx",
        "onnxruntime:model.fp16.onnx",
        "onnxruntime:model.int8.onnx",
        "onnxruntime:model.int8-cpu.onnx",
    ]
    assert all(s.model.parent == tmp_path for s in specs)


def test_bad_input():
    with pytest.raises(BenchmarkError, match="listed twice"):
        resolve_backends(["onnxruntime:m.onnx", "onnxruntime:m.onnx"], [])
    with pytest.raises(BenchmarkError, match="expected NAME"):
        split_backend(":m.onnx")
    with pytest.raises(BenchmarkError, match="--suite"):
        resolve_backends([], [], suite="nope")
    with pytest.raises(BenchmarkError, match="--precision"):
        resolve_backends([], [], precision="int4")


def test_device_of_runner():
    from benchmarks.backends import device_of

    class Fake:
        def __init__(self, name, compute_device=None):
            self.name = name
            if compute_device is not None:
                self.compute_device = compute_device

    assert device_of(Fake("tensorrt")) == "gpu"
    assert device_of(Fake("onnxruntime")) == "cpu"
    assert device_of(Fake("onnxruntime", "gpu")) == "gpu"  # e.g. ONNX Runtime on the CUDA provider
    assert device_of(Fake("tensorrt", 0)) == "gpu"  # a GPU index is not a device kind: ignored
