"""The TensorRT build itself: runs only where TensorRT and a GPU exist."""

from __future__ import annotations

import pytest

from export.__main__ import main


def test_engine_refuses_clearly_without_tensorrt(tiny_onnx, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the refusal path cannot be exercised")
    code = main(["engine", "--onnx", str(tiny_onnx.onnx_path), "--out", str(tmp_path / "m.engine")])
    assert code == 3
    assert "python3-libnvinfer" in capsys.readouterr().err


@pytest.mark.tensorrt
def test_build_reuse_and_refuse(tiny_onnx, tmp_path):
    pytest.importorskip("tensorrt")
    from export.engine import EngineConfig, build_engine
    from export.errors import EngineError
    from gaitcontract.manifest import verify_artifact

    engine = tmp_path / "model.engine"
    built = build_engine(EngineConfig(tiny_onnx.onnx_path, engine, timing_cache=tmp_path))
    assert built.decision.action == "build" and engine.stat().st_size > 0
    manifest = verify_artifact(engine)
    assert manifest.kind == "engine" and manifest.engine["tensorrt_version"]
    assert built.timing_cache_path.is_file()
    again = build_engine(EngineConfig(tiny_onnx.onnx_path, engine, reuse_if_current=True))
    assert again.decision.action == "reuse"
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_onnx.onnx_path.read_bytes() + b"")
    (tmp_path / "model.engine.manifest.json").write_text(
        (tmp_path / "model.engine.manifest.json")
        .read_text()
        .replace(manifest.source["onnx_sha256"], "0" * 64)
    )
    with pytest.raises(EngineError, match="--force"):
        build_engine(EngineConfig(tiny_onnx.onnx_path, engine))


@pytest.mark.tensorrt
def test_verify_engine_against_onnxruntime(tiny_onnx, tmp_path):
    pytest.importorskip("tensorrt")
    from export.engine import EngineConfig, build_engine
    from export.verify import verify_engine

    engine = tmp_path / "model.engine"
    build_engine(EngineConfig(tiny_onnx.onnx_path, engine))
    report = verify_engine(engine, tiny_onnx.onnx_path, walks=20)
    print(report.format())
    assert report.argmax_agreement >= 0.99


@pytest.mark.tensorrt
def test_boot_rebuilds_a_truncated_engine_and_accepts_its_timing_cache(tiny_onnx, tmp_path):
    pytest.importorskip("tensorrt")
    import numpy as np

    from edge.runners.registry import create_runner
    from export.engine import EngineConfig, build_engine
    from gaitcontract.spec import INPUT_NAME

    engine = tmp_path / "model.engine"
    boot = EngineConfig(
        tiny_onnx.onnx_path, engine, timing_cache=tmp_path / "cache", reuse_if_current=True
    )
    first = build_engine(boot)
    assert first.decision.action == "build" and first.timing_cache_path.is_file()
    engine.write_bytes(engine.read_bytes()[:-64])
    again = build_engine(boot)
    assert (
        again.decision.action == "build" and again.notes == []
    )  # this machine's cache was accepted
    with create_runner("tensorrt", engine, onnx_path=str(tiny_onnx.onnx_path)) as runner:
        assert runner.infer({INPUT_NAME: np.zeros(runner.input_shape, np.float32)})[
            "probs"
        ].shape == (1, 3)
    assert build_engine(boot).decision.action == "reuse"
