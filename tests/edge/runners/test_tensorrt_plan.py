"""The TensorRT runner's decisions, as pure functions (no TensorRT needed), and the real thing where present."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import RunnerError
from edge.runners.registry import create_runner
from edge.runners.trt_plan import (
    IOTensor,
    choose_cuda_library,
    cuda_major_from_text,
    engine_mismatches,
    numpy_dtype,
    parse_version,
    plan_io,
)


def test_cuda_library_choice_prefers_cuda_python():
    assert choose_cuda_library(lambda m: True) == "cuda-python"
    assert choose_cuda_library(lambda m: m == "pycuda.driver") == "pycuda"
    assert choose_cuda_library(lambda m: True, prefer="pycuda") == "pycuda"
    with pytest.raises(
        ValueError, match=r"cuda-python or pycuda.*gaitmil-edge\[cuda12\].*JetPack 6"
    ):
        choose_cuda_library(lambda m: False)
    # the extra for this machine's CUDA major, when it is known
    with pytest.raises(ValueError, match=r"gaitmil-edge\[cuda13\]"):
        choose_cuda_library(lambda m: False, cuda_major=13)
    with pytest.raises(ValueError, match="not installed"):
        choose_cuda_library(lambda m: m == "cuda.bindings.runtime", prefer="pycuda")
    # a bare `cuda` namespace package (any cuda/ folder on sys.path) is not cuda-python
    assert choose_cuda_library(lambda m: m in ("cuda", "pycuda.driver")) == "pycuda"


def test_cuda_major_from_l4t_or_toolkit():
    assert cuda_major_from_text("36", None) == 12 and cuda_major_from_text("38", None) == 13
    assert cuda_major_from_text(None, '{"cuda": {"name": "CUDA SDK", "version": "13.0.48"}}') == 13
    assert (
        cuda_major_from_text(None, "not json") is None and cuda_major_from_text(None, None) is None
    )
    with pytest.raises(ValueError, match="use one of"):
        choose_cuda_library(lambda m: True, prefer="cupy")


class _FakeDType:  # stands in for tensorrt.DataType (only .name is read)
    def __init__(self, name):
        self.name = name


def test_dtype_mapping():
    assert numpy_dtype(_FakeDType("FLOAT")) == np.float32
    assert numpy_dtype("DataType.HALF") == np.float16
    assert numpy_dtype("INT8") == np.int8
    with pytest.raises(ValueError, match="BF16"):
        numpy_dtype("BF16")


def _tensors(
    frames=30,
    input_dtype=np.float32,
    outputs=("logits", "probs", "phase_attention", "frame_attention"),
):
    shapes = {
        "logits": (1, 3),
        "probs": (1, 3),
        "phase_attention": (1, 4),
        "frame_attention": (1, frames),
    }
    yield IOTensor("silhouettes", True, (1, frames, 64, 44), np.dtype(input_dtype))
    for name in outputs:
        yield IOTensor(name, False, shapes[name], np.dtype(np.float32))


def test_plan_io_accepts_the_contract_and_orders_outputs():
    plan = plan_io(reversed(list(_tensors())))
    assert plan.input.shape == (1, 30, 64, 44)
    assert plan.input.nbytes == 30 * 64 * 44 * 4
    assert [t.name for t in plan.outputs] == [
        "logits",
        "probs",
        "phase_attention",
        "frame_attention",
    ]


def test_plan_io_binds_extra_outputs_but_returns_the_contract():
    extra = IOTensor("embedding", False, (1, 128), np.dtype(np.float32))
    plan = plan_io([*_tensors(), extra])
    assert [t.name for t in plan.outputs] == [
        "logits",
        "probs",
        "phase_attention",
        "frame_attention",
    ]
    assert (
        plan.extra_outputs == (extra,) and extra in plan.tensors
    )  # TensorRT needs its address too
    with pytest.raises(ValueError, match="dynamic shape"):
        plan_io([*_tensors(), IOTensor("embedding", False, (-1, 128), np.dtype(np.float32))])


@pytest.mark.parametrize(
    "tensors, message",
    [
        (list(_tensors(input_dtype=np.float16)), "expected float32"),
        (list(_tensors(outputs=("logits", "probs"))), "lacks outputs"),
        (
            [IOTensor("images", True, (1, 30, 64, 44), np.dtype(np.float32))],
            "expected \\['silhouettes'\\]",
        ),
        ([IOTensor("silhouettes", True, (-1, 30, 64, 44), np.dtype(np.float32))], "static"),
        ([IOTensor("silhouettes", True, (1, 30, 64, 64), np.dtype(np.float32))], "static"),
    ],
)
def test_plan_io_refusals(tensors, message):
    with pytest.raises(ValueError, match=message):
        plan_io(tensors)


def test_versions_compare_as_numbers():
    assert parse_version("10.3.0.26") == (10, 3, 0, 26)
    assert parse_version("10.13.0") > parse_version("10.3.0")  # as strings "10.13" < "10.3"
    with pytest.raises(ValueError):
        parse_version("unknown")


MANIFEST = {
    "kind": "engine",
    "precision": "fp16",
    "engine": {
        "tensorrt_version": "10.3.0.30",
        "gpu_name": "Orin",
        "compute_capability": [8, 7],
        "l4t": "36.4",
    },
    "source": {"onnx_sha256": "a" * 64},
}


def test_engine_manifest_matching_machine_has_no_mismatch():
    assert (
        engine_mismatches(
            MANIFEST,
            tensorrt_version="10.3.0.30",
            gpu_name="Orin",
            compute_capability=(8, 7),
            onnx_sha256="a" * 64,
        )
        == []
    )
    # a build number difference in the 4th field does not matter, the release does
    assert (
        engine_mismatches(
            MANIFEST, tensorrt_version="10.3.0.26", gpu_name="Orin", compute_capability="8.7"
        )
        == []
    )


def test_engine_manifest_mismatches_say_how_to_rebuild():
    problems = engine_mismatches(
        MANIFEST,
        tensorrt_version="10.13.0",
        gpu_name="Thor",
        compute_capability=(11, 0),
        onnx_sha256="b" * 64,
    )
    assert len(problems) == 4
    joined = " ".join(problems)
    for text in ("TensorRT 10.3.0.30", "this machine has 10.13.0", "'Thor'", "(11, 0)", "ONNX"):
        assert text in joined
    assert all("python -m export engine" in p for p in problems)
    assert engine_mismatches(
        {"kind": "onnx"}, tensorrt_version="10.3", gpu_name="x", compute_capability=(8, 7)
    )


def test_tensorrt_runner_without_tensorrt_names_the_install(tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here; the refusal path is for machines without it")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(RunnerError, match="python3-libnvinfer.*gaitmil-edge\\[tensorrt-cu12\\]"):
        create_runner("tensorrt", engine).activate()
