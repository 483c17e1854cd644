"""The CUDA buffer code on its own (no TensorRT): on the fake everywhere, on a real GPU where one exists.

The `gpu` case needs cuda-python and a CUDA GPU (no TensorRT): run it on a Jetson or a
GPU workstation with `pytest tests/edge/runners/test_cuda_buffers.py -m gpu`.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from edge.runners.cuda_buffers import CudaPythonBuffers, device_facts
from edge.runners.trt_plan import IOTensor, plan_io
from gaitcontract.spec import OUTPUT_NAMES


def _plan(frames: int = 8):
    shapes = {
        "logits": (1, 3),
        "probs": (1, 3),
        "phase_attention": (1, 4),
        "frame_attention": (1, frames),
    }
    tensors = [IOTensor("silhouettes", True, (1, frames, 64, 44), np.dtype(np.float32))]
    tensors += [IOTensor(n, False, shapes[n], np.dtype(np.float32)) for n in OUTPUT_NAMES]
    return plan_io(tensors)


@pytest.fixture(params=["fake", pytest.param("gpu", marks=pytest.mark.gpu)])
def cudart(request, monkeypatch):
    if request.param == "fake":
        from tests.fakes.install import install

        install(monkeypatch, cuda_bindings=13)
    else:
        runtime = pytest.importorskip(
            "cuda.bindings.runtime", reason="needs cuda-python and a CUDA GPU"
        )
        err, count = runtime.cudaGetDeviceCount()
        if int(err) != 0 or count < 1:
            pytest.skip(f"no CUDA device here (cudaGetDeviceCount: {err}, {count})")
    from cuda.bindings import runtime

    return runtime


def test_round_trip_through_device_memory(cudart):
    facts = device_facts("cuda-python", 0)
    assert (
        facts.name
        and facts.compute_capability[0] >= 5
        and facts.sm_count > 0
        and facts.memory_gib >= 1
    )
    plan = _plan()
    buffers = CudaPythonBuffers(0)
    buffers.allocate(plan)
    try:
        x = np.random.default_rng(0).random(plan.input.shape).astype(np.float32)
        np.copyto(buffers.host["silhouettes"], x)
        buffers.mark(0)
        buffers.copy_inputs()
        buffers.mark(1)
        back = np.zeros_like(x)
        err, pinned = cudart.cudaMallocHost(back.nbytes)
        assert int(err) == 0
        view = np.frombuffer(
            (ctypes.c_byte * back.nbytes).from_address(int(pinned)), np.float32
        ).reshape(x.shape)
        (err,) = cudart.cudaMemcpyAsync(
            int(pinned),
            buffers.device["silhouettes"],
            back.nbytes,
            cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
            buffers.stream,
        )
        assert int(err) == 0
        buffers.copy_outputs()
        buffers.mark(2)
        buffers.synchronize()
        np.testing.assert_array_equal(view, x)  # the bytes went to the device and came back
        assert buffers.elapsed_ms(0, 2) >= buffers.elapsed_ms(0, 1) >= 0.0
        assert buffers.stream_handle != 0
        (err,) = cudart.cudaFreeHost(int(pinned))
        assert int(err) == 0
    finally:
        buffers.free()
    buffers.free()  # idempotent
    assert buffers.host == {} and buffers.device == {}
