"""The latency benchmark on a TensorRT engine (runs only where TensorRT and a CUDA GPU exist)."""

from __future__ import annotations

import json

import pytest

from benchmarks.latency import main
from benchmarks.report import validate
from benchmarks.stats import is_ordered


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_engine_beside_onnxruntime(tiny_models, tmp_path):
    pytest.importorskip("tensorrt")
    from export.engine import EngineConfig, build_engine

    engine = build_engine(
        EngineConfig(onnx=tiny_models.onnx, out=tmp_path / "model.engine")
    ).engine_path
    out = tmp_path / "lat.json"
    code = main(
        [
            "--backend",
            f"tensorrt:{engine}",
            "--backend",
            f"onnxruntime:{tiny_models.onnx}",
            "--onnx",
            str(tiny_models.onnx),
            "--iters",
            "20",
            "--warmup",
            "5",
            "--walks",
            "2",
            "--walk-frames",
            "24",
            "--probe-size",
            "256",
            "--peak-gflops",
            "1000",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    validate(report, "latency")
    trt = report["backends"][0]
    assert trt["device"] == "gpu" and trt["limit"]["macs_per_walk"] > 0
    # GPU time comes from CUDA events; copies to and from the device are real and timed
    assert trt["stages"]["h2d"]["min"] > 0 and trt["stages"]["d2h"]["min"] > 0
    for stage in trt["stages"].values():
        assert is_ordered(stage)
