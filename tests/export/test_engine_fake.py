"""`export engine` end to end against the fake TensorRT / cuda-python (tests/fakes): runs on every CI machine.

The fake keeps TensorRT's and cuda-python's signatures and return conventions, so these
tests execute the builder's glue (timing cache, manifest, precision bookkeeping, model id)
that the real-hardware tests in test_engine_trt.py can only check on a Jetson.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from edge.runners.registry import create_runner
from export.__main__ import main
from export.engine import EngineConfig, build_engine
from export.errors import EngineError
from gaitcontract.manifest import manifest_path_for, verify_artifact
from gaitcontract.spec import INPUT_NAME, OUTPUT_NAMES
from tests.fakes.install import install


@pytest.fixture
def model(tiny_onnx, tmp_path):
    """A private copy of the tiny ONNX and its manifest (tests edit them)."""
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(tiny_onnx.onnx_path, folder / "model.onnx")
    shutil.copy(tiny_onnx.manifest_path, folder / "model.manifest.json")
    return folder / "model.onnx"


def _config(model, tmp_path, **changes) -> EngineConfig:
    return EngineConfig(
        model, tmp_path / "engines" / "model.engine", timing_cache=tmp_path / "cache", **changes
    )


def _agrees_with_onnxruntime(engine, model, **options) -> None:
    rng = np.random.default_rng(0)
    with (
        create_runner("onnxruntime", model) as reference,
        create_runner("tensorrt", engine, onnx_path=str(model), **options) as runner,
    ):
        x = (rng.random(runner.input_shape) > 0.5).astype(np.float32)
        expected, got = reference.infer({INPUT_NAME: x}), runner.infer({INPUT_NAME: x})
        for name in OUTPUT_NAMES:
            np.testing.assert_allclose(got[name], expected[name], atol=1e-5, err_msg=name)
        assert runner.last_timing["compute_ms"] > 0.0


def test_build_records_the_machine_then_reuses(monkeypatch, model, tmp_path):
    fake = install(monkeypatch, tensorrt="10.3.0.30", cuda_bindings=12)
    built = build_engine(_config(model, tmp_path))
    assert built.decision.action == "build"
    manifest = verify_artifact(built.engine_path)  # the manifest matches the engine just written
    onnx_manifest = json.loads((model.parent / "model.manifest.json").read_text())
    assert manifest.model_id == onnx_manifest["model_id"] and manifest.precision == "fp32"
    assert (
        manifest.engine["tensorrt_version"] == "10.3.0.30"
        and manifest.engine["gpu_name"] == "Orin (nvgpu)"
    )
    assert manifest.engine["sm_count"] == 8 and manifest.engine["memory_gib"] == 8
    assert manifest.extra["tf32"] is False
    build = fake.options.builds[-1]
    assert (
        "TF32" not in build["flags"] and build["strongly_typed"]
    )  # FP32 means FP32 (no TF32 rounding)
    assert built.timing_cache_path.is_file() and "-8sm-8gib" in built.timing_cache_path.name
    again = build_engine(_config(model, tmp_path, reuse_if_current=True))
    assert again.decision.action == "reuse" and len(fake.options.builds) == 1
    _agrees_with_onnxruntime(built.engine_path, model)


def test_rejected_timing_cache_falls_back_and_the_manifest_still_matches(
    monkeypatch, model, tmp_path
):
    fake = install(monkeypatch)
    first = build_engine(_config(model, tmp_path))
    fake.options.reject_timing_cache = (
        True  # as TensorRT does for a cache from other device properties
    )
    second = build_engine(_config(model, tmp_path, force=True))
    assert any("rejected the timing cache" in note for note in second.notes)
    verify_artifact(second.engine_path)  # the engine and its manifest agree
    assert (
        second.timing_cache_path == first.timing_cache_path and second.timing_cache_path.is_file()
    )
    _agrees_with_onnxruntime(second.engine_path, model)


def test_unsaved_timing_cache_does_not_fail_the_build(monkeypatch, model, tmp_path):
    install(monkeypatch)
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a folder")
    result = build_engine(
        EngineConfig(model, tmp_path / "model.engine", timing_cache=blocker / "sub" / "t.cache")
    )
    assert result.timing_cache_path is None and any("not saved" in note for note in result.notes)
    verify_artifact(result.engine_path)


def _strip_metadata(model):
    import onnx

    proto = onnx.load(str(model))
    del proto.metadata_props[:]
    onnx.save(proto, str(model))


def test_model_id_comes_from_the_onnx_manifest_when_metadata_lacks_it(monkeypatch, model, tmp_path):
    install(monkeypatch)
    model_id = json.loads((model.parent / "model.manifest.json").read_text())["model_id"]
    _strip_metadata(model)
    manifest_path = model.parent / "model.manifest.json"
    data = json.loads(manifest_path.read_text())
    from gaitcontract.manifest import sha256_file

    data["files"] = {model.name: sha256_file(model)}
    manifest_path.write_text(json.dumps(data))
    result = build_engine(_config(model, tmp_path))
    assert verify_artifact(result.engine_path).model_id == model_id


def test_an_onnx_without_any_model_id_is_refused(monkeypatch, model, tmp_path):
    install(monkeypatch)
    _strip_metadata(model)
    (model.parent / "model.manifest.json").unlink()
    with pytest.raises(EngineError, match="names no model id"):
        build_engine(_config(model, tmp_path))


def test_legacy_fp16_records_the_effective_precision(monkeypatch, model, tmp_path):
    fake = install(monkeypatch, tensorrt="10.3.0.30")
    built = build_engine(_config(model, tmp_path, legacy_fp16=True))
    assert verify_artifact(built.engine_path).precision == "fp16"
    assert (
        "FP16" in fake.options.builds[-1]["flags"] and not fake.options.builds[-1]["strongly_typed"]
    )
    assert (
        build_engine(
            _config(model, tmp_path, legacy_fp16=True, reuse_if_current=True)
        ).decision.action
        == "reuse"
    )
    # asking again for the same build rebuilds it (no "precision differs" refusal)
    assert build_engine(_config(model, tmp_path, legacy_fp16=True)).decision.action == "build"
    # the other typing is another engine: refused without --force
    with pytest.raises(EngineError, match="legacy_fp16"):
        build_engine(_config(model, tmp_path))


def test_legacy_fp16_is_refused_for_int8_and_on_tensorrt_11(monkeypatch, model, tmp_path):
    install(monkeypatch, tensorrt="11.4.1", cuda_bindings=13)
    with pytest.raises(EngineError, match="removed in 11.0"):
        build_engine(_config(model, tmp_path, legacy_fp16=True))
    install(monkeypatch, tensorrt="10.3.0.30")
    manifest_path = model.parent / "model.manifest.json"
    data = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps(data | {"precision": "int8", "target": "tensorrt"}))
    with pytest.raises(EngineError, match="INT8 Q/DQ"):
        build_engine(_config(model, tmp_path, legacy_fp16=True))


def test_tensorrt_11_with_cuda_bindings_13(monkeypatch, model, tmp_path):
    fake = install(monkeypatch, tensorrt="11.4.1", cuda_bindings=13)
    assert not hasattr(fake.trt.BuilderFlag, "FP16")  # 11.x has no precision flags
    built = build_engine(_config(model, tmp_path))
    assert (
        fake.options.builds[-1]["strongly_typed"] and "TF32" not in fake.options.builds[-1]["flags"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error", DeprecationWarning
        )  # int(stream) is deprecated in cuda-bindings 13
        _agrees_with_onnxruntime(built.engine_path, model)


def test_cli_build_and_reuse(monkeypatch, model, tmp_path, capsys):
    install(monkeypatch)
    args = [
        "engine",
        "--onnx",
        str(model),
        "--out",
        str(tmp_path / "m.engine"),
        "--timing-cache",
        str(tmp_path / "cache"),
        "--reuse-if-current",
    ]
    assert main(args) == 0
    assert "built" in capsys.readouterr().out
    assert main(args) == 0
    assert "is current" in capsys.readouterr().out


def test_verify_names_export_engine_for_a_missing_engine(monkeypatch, model, tmp_path, capsys):
    install(monkeypatch)
    code = main(
        [
            "verify",
            "--engine",
            str(tmp_path / "absent.engine"),
            "--onnx",
            str(model),
            "--walks",
            "4",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "python -m export engine" in err and "Traceback" not in err


def test_verify_without_tensorrt_says_how_to_install(monkeypatch, model, tmp_path, capsys):
    install(monkeypatch)
    engine = build_engine(_config(model, tmp_path)).engine_path
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", None)
    code = main(["verify", "--engine", str(engine), "--onnx", str(model), "--walks", "4"])
    assert code == 3 and "python3-libnvinfer" in capsys.readouterr().err


def test_verify_checks_the_onnx_the_engine_was_built_from(monkeypatch, model, tmp_path, capsys):
    install(monkeypatch)
    engine = build_engine(_config(model, tmp_path)).engine_path
    assert main(["verify", "--engine", str(engine), "--onnx", str(model), "--walks", "6"]) == 0
    other = tmp_path / "other" / "model.onnx"
    other.parent.mkdir()
    shutil.copy(model, other)
    _strip_metadata(other)  # the same graph in another file: not what the engine was built from
    code = main(["verify", "--engine", str(engine), "--onnx", str(other), "--walks", "6"])
    assert code == 2 and "engine was built from ONNX" in capsys.readouterr().err
    assert manifest_path_for(engine).is_file()


def test_a_corrupt_timing_cache_file_is_replaced(monkeypatch, model, tmp_path):
    install(monkeypatch)
    first = build_engine(_config(model, tmp_path))
    first.timing_cache_path.write_bytes(b"\x00garbage, not a timing cache")
    second = build_engine(_config(model, tmp_path, force=True))
    assert any("rejected the timing cache" in note for note in second.notes)
    assert second.timing_cache_path.read_bytes().startswith(
        b"FAKETC"
    )  # a fresh cache saved in its place


def test_a_failed_build_keeps_the_previous_pair(monkeypatch, model, tmp_path):
    fake = install(monkeypatch)
    first = build_engine(_config(model, tmp_path))
    before = first.engine_path.read_bytes(), first.manifest_path.read_bytes()
    fake.options.fail_build = True
    with pytest.raises(EngineError, match="could not build an engine"):
        build_engine(_config(model, tmp_path, force=True))
    assert (first.engine_path.read_bytes(), first.manifest_path.read_bytes()) == before
    verify_artifact(first.engine_path)
