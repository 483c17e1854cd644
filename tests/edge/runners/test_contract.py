"""Every runner that can run here passes the same contract on the same walks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError, RunnerError
from edge.runners import available_runners, create_runner
from edge.runners.base import TIMING_KEYS
from edge.screening.classify import Classifier
from edge.types import Walk, WalkQuality
from gaitcontract.spec import INPUT_NAME, NUM_CLASSES, OUTPUT_NAMES, even_indices, to_model_input

from .conftest import FRAMES

RUNNER_PARAMS = [
    pytest.param("onnxruntime", id="onnxruntime-fp32"),
    pytest.param("torch", id="torch"),
    pytest.param("tensorrt", id="tensorrt", marks=pytest.mark.tensorrt),
    # the TensorRT runner on the fakes of tests/fakes (every CI machine): outputs are ONNX
    # Runtime's, so these cases check the runner's glue, not TensorRT's kernels
    pytest.param("tensorrt-fake-10.3", id="tensorrt-fake-10.3-cuda-python12"),
    pytest.param("tensorrt-fake-11", id="tensorrt-fake-11.4-cuda-python13"),
    pytest.param("tensorrt-fake-pycuda", id="tensorrt-fake-10.3-pycuda"),
]
FAKE_TENSORRT = {
    "tensorrt-fake-10.3": {"tensorrt": "10.3.0.30", "cuda_bindings": 12},
    "tensorrt-fake-11": {"tensorrt": "11.4.1", "cuda_bindings": 13},
    "tensorrt-fake-pycuda": {"tensorrt": "10.3.0.30", "cuda_bindings": None},
}


def backend(name: str) -> str:
    """The registry name behind a test parameter."""
    return "tensorrt" if name.startswith("tensorrt") else name


@pytest.fixture(scope="module")
def reference_outputs(tiny_checkpoint, contract_walks):
    """The torch model itself, called directly: what every runner must reproduce."""
    import torch

    from gaitmil.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_checkpoint)
    outputs = []
    for sil in contract_walks:
        x = to_model_input(sil[even_indices(len(sil), FRAMES)])[None]
        with torch.inference_mode():
            out = model(torch.from_numpy(x))
        outputs.append({n: getattr(out, n).numpy() for n in OUTPUT_NAMES})
    return outputs


@pytest.fixture
def model_for(tiny_checkpoint, tiny_onnx, tmp_path, monkeypatch):
    def build(name: str):
        if name == "torch":
            return tiny_checkpoint
        if name == "onnxruntime":
            return tiny_onnx
        if name in FAKE_TENSORRT:
            from tests.fakes.install import install

            install(monkeypatch, **FAKE_TENSORRT[name])
        else:
            pytest.importorskip("tensorrt")
        from export.engine import (  # the export package's builder (writes the manifest)
            EngineConfig,
            build_engine,
        )

        config = EngineConfig(
            onnx=tiny_onnx, out=tmp_path / "model.engine", timing_cache=tmp_path / "cache"
        )
        return build_engine(config).engine_path

    return build


def _walk(sil: np.ndarray) -> Walk:
    times = np.arange(len(sil), dtype=np.float64) / 30.0
    return Walk(0.0, float(times[-1]), sil, times, WalkQuality(len(sil), len(sil)))


@pytest.mark.parametrize("name", RUNNER_PARAMS)
def test_same_outputs_on_same_walks(name, model_for, contract_walks, reference_outputs):
    with create_runner(backend(name), model_for(name), threads=1) as runner:
        assert runner.input_shape == (1, FRAMES, 64, 44)
        assert runner.frames == FRAMES
        assert runner.precision == "fp32"
        assert runner.model_id.startswith("gaitmil-tiny-")
        assert len(runner.model_sha256) == 64
        for sil, expected in zip(contract_walks, reference_outputs):
            x = to_model_input(sil[even_indices(len(sil), FRAMES)])[None]
            outputs = runner.infer({INPUT_NAME: x})
            assert list(outputs) == list(OUTPUT_NAMES)
            for key in OUTPUT_NAMES:
                assert outputs[key].dtype == np.float32
                np.testing.assert_allclose(
                    outputs[key], expected[key], atol=2e-4, rtol=1e-3, err_msg=key
                )
            assert outputs["probs"].shape == (1, NUM_CLASSES)
            assert abs(float(outputs["probs"].sum()) - 1.0) < 1e-4
            assert outputs["frame_attention"].shape == (1, FRAMES)
            timing = runner.last_timing
            assert set(timing) == set(TIMING_KEYS)
            assert timing["total_ms"] > 0.0 and timing["compute_ms"] > 0.0
            assert timing["total_ms"] >= timing["compute_ms"] - 1e-6


# what each backend's activate() must report besides the shape: (manifest checked, its kind)
EXPECTED_MANIFEST = {"onnxruntime": "onnx", "torch": None, "tensorrt": "engine"}


@pytest.mark.parametrize("name", RUNNER_PARAMS)
def test_facts_come_from_activate(name, model_for, tiny_checkpoint):
    from gaitcontract.manifest import find_manifest, read_manifest, sha256_file
    from gaitmil.checkpoint import describe_checkpoint

    path = model_for(name)
    runner = create_runner(backend(name), path)
    with pytest.raises(RunnerError, match="activate"):
        runner.facts  # noqa: B018 - nothing is known before activate()
    with runner:
        facts = runner.facts
        assert (facts.input_shape, facts.precision, facts.model_id, facts.model_sha256) == (
            runner.input_shape,
            runner.precision,
            runner.model_id,
            runner.model_sha256,
        )
    assert facts.input_shape == (1, FRAMES, 64, 44)
    assert facts.precision == "fp32"
    assert facts.model_sha256 == sha256_file(path)
    assert facts.model_id == describe_checkpoint(tiny_checkpoint)["model_id"]
    kind = EXPECTED_MANIFEST[backend(name)]
    if kind is None:
        assert facts.manifest is None
    else:
        assert facts.manifest == find_manifest(path)
        assert read_manifest(facts.manifest).kind == kind
    assert runner.facts == facts  # kept after deactivate(), for reports


@pytest.mark.parametrize("name", RUNNER_PARAMS)
def test_classifier_maps_attention_to_walk_frames(
    name, model_for, contract_walks, reference_outputs
):
    with create_runner(backend(name), model_for(name)) as runner:
        classifier = Classifier(runner)
        for sil, expected in zip(contract_walks, reference_outputs):
            prediction = classifier.classify(_walk(sil))
            np.testing.assert_allclose(prediction.probs, expected["probs"][0], atol=2e-4)
            np.testing.assert_array_equal(prediction.frame_indices, even_indices(len(sil), FRAMES))
            assert prediction.frame_indices.max() < len(sil)
            assert prediction.runner == backend(name) and prediction.precision == "fp32"
            assert prediction.inference_ms > 0.0
            assert prediction.frame_attention.shape == prediction.frame_indices.shape


@pytest.mark.parametrize("name", RUNNER_PARAMS)
def test_lifecycle_misuse_raises(name, model_for):
    runner = create_runner(backend(name), model_for(name))
    x = np.zeros((1, FRAMES, 64, 44), np.float32)
    assert not runner.is_active
    with pytest.raises(RunnerError, match="activate"):
        runner.infer({INPUT_NAME: x})
    with pytest.raises(RunnerError, match="not active"):
        runner.deactivate()
    runner.activate()
    assert runner.is_active
    with pytest.raises(RunnerError, match="already active"):
        runner.activate()
    runner.infer({INPUT_NAME: x})
    runner.deactivate()
    assert not runner.is_active
    with pytest.raises(RunnerError, match="activate"):
        runner.infer({INPUT_NAME: x})
    # a runner can be activated again after deactivate
    with runner:
        assert runner.infer({INPUT_NAME: x})["probs"].shape == (1, NUM_CLASSES)


BAD_FEEDS = {
    "wrong_name": (
        {"images": np.zeros((1, FRAMES, 64, 44), np.float32)},
        "exactly the tensor 'silhouettes'",
    ),
    "extra_tensor": (
        {
            INPUT_NAME: np.zeros((1, FRAMES, 64, 44), np.float32),
            "frame_mask": np.ones((1, FRAMES), np.float32),
        },
        "exactly the tensor",
    ),
    "uint8": (
        {INPUT_NAME: np.zeros((1, FRAMES, 64, 44), np.uint8)},
        "expected dtype float32, got uint8",
    ),
    "float64": (
        {INPUT_NAME: np.zeros((1, FRAMES, 64, 44), np.float64)},
        "expected dtype float32, got float64",
    ),
    "wrong_frames": (
        {INPUT_NAME: np.zeros((1, FRAMES + 1, 64, 44), np.float32)},
        rf"expected shape \(1, {FRAMES}, 64, 44\), got \(1, {FRAMES + 1}, 64, 44\)",
    ),
    "64x64": ({INPUT_NAME: np.zeros((1, FRAMES, 64, 64), np.float32)}, "expected shape"),
    "nan": ({INPUT_NAME: np.full((1, FRAMES, 64, 44), np.nan, np.float32)}, "NaN or inf"),
    "0_255": ({INPUT_NAME: np.full((1, FRAMES, 64, 44), 255.0, np.float32)}, r"in \[0, 1\]"),
    "not_array": ({INPUT_NAME: [[0.0]]}, "numpy array"),
}


@pytest.mark.parametrize("name", RUNNER_PARAMS)
@pytest.mark.parametrize("case", sorted(BAD_FEEDS))
def test_bad_feeds_raise_runner_error(name, case, model_for):
    feed, message = BAD_FEEDS[case]
    with create_runner(backend(name), model_for(name)) as runner:
        with pytest.raises(RunnerError, match=message):
            runner.infer(feed)
        runner.last_timing = None
        # the runner still works after a refused feed
        runner.infer({INPUT_NAME: np.zeros(runner.input_shape, np.float32)})
        assert runner.last_timing is not None


def test_corrupt_onnx_is_a_model_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf" * 50)
    with pytest.raises(ModelError, match=r"corrupt or not an ONNX model.*python -m export onnx"):
        create_runner("onnxruntime", path).activate()


def test_truncated_onnx_without_manifest_is_a_model_error(tiny_onnx, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(tiny_onnx.read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot load"):
        create_runner("onnxruntime", path).activate()


def test_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        create_runner("onnxruntime", tmp_path / "absent.onnx").activate()


def test_corrupt_checkpoint_is_a_model_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match=r"torch runner: .*checkpoint\.pt is not a .*checkpoint"):
        create_runner("torch", path).activate()


def _copy_with_manifest(tiny_onnx, tmp_path):
    shutil.copy(tiny_onnx, tmp_path / "model.onnx")
    shutil.copy(tiny_onnx.with_name("model.manifest.json"), tmp_path / "model.manifest.json")
    return tmp_path / "model.onnx"


def test_model_changed_after_manifest_is_refused(tiny_onnx, tmp_path):
    path = _copy_with_manifest(tiny_onnx, tmp_path)
    with path.open("ab") as fh:
        fh.write(
            b"\x00"
        )  # still loads in ONNX Runtime, but no longer the model the manifest describes
    with pytest.raises(ModelError, match="sha256.*regenerate"):
        create_runner("onnxruntime", path).activate()


def test_manifest_with_other_input_shape_is_refused(tiny_onnx, tmp_path):
    path = _copy_with_manifest(tiny_onnx, tmp_path)
    manifest_path = tmp_path / "model.manifest.json"
    data = json.loads(manifest_path.read_text())
    data["input_shapes"][INPUT_NAME] = [1, 30, 64, 44]
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"manifest says input shape \[1, 30, 64, 44\]"):
        create_runner("onnxruntime", path).activate()


def test_manifest_for_an_engine_is_refused(tiny_onnx, tmp_path):
    path = _copy_with_manifest(tiny_onnx, tmp_path)
    manifest_path = tmp_path / "model.manifest.json"
    data = json.loads(manifest_path.read_text())
    data["kind"] = "engine"
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="describes a 'engine'"):
        create_runner("onnxruntime", path).activate()


def test_manifest_precision_and_id_are_reported(tiny_onnx, tmp_path):
    path = _copy_with_manifest(tiny_onnx, tmp_path)
    manifest = json.loads((tmp_path / "model.manifest.json").read_text())
    with create_runner("onnxruntime", path) as runner:
        assert runner.model_id == manifest["model_id"]
        assert runner.precision == "fp32"


def test_require_manifest_refuses_a_bare_model(tiny_onnx, tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copy(tiny_onnx, path)
    with pytest.raises(ModelError, match="no manifest"):
        create_runner("onnxruntime", path, require_manifest=True).activate()
    with create_runner("onnxruntime", path) as runner:  # verified only when present
        assert runner.model_id  # from metadata or file name + hash


def test_unavailable_provider_is_refused_not_replaced(tiny_onnx):
    with pytest.raises(RunnerError, match="CUDAExecutionProvider.*not available"):
        create_runner("onnxruntime", tiny_onnx, providers=["CUDAExecutionProvider"]).activate()


def test_unknown_runner_and_option_are_refused(tiny_onnx):
    with pytest.raises(RunnerError, match="unknown runner 'openvino'.*onnxruntime"):
        create_runner("openvino", tiny_onnx)
    with pytest.raises(RunnerError, match="unknown option"):
        create_runner("onnxruntime", tiny_onnx, fp16=True)
    with pytest.raises(RunnerError, match="threads"):
        create_runner("onnxruntime", tiny_onnx, threads=0)


def test_available_runners_reports_reasons():
    status = available_runners()
    assert status["onnxruntime"] is True
    assert set(status) == {"onnxruntime", "torch", "tensorrt"}
    for value in status.values():
        assert value is True or (isinstance(value, str) and "pip install" in value)


def test_classifier_refuses_a_gated_walk(tiny_onnx, contract_walks):
    walk = _walk(contract_walks[1])
    walk.retake_reason = "too_short"
    with create_runner("onnxruntime", tiny_onnx) as runner:
        with pytest.raises(RunnerError, match="retake"):
            Classifier(runner).classify(walk)


DEMO = Path(__file__).resolve().parents[3] / "models" / "demo"


@pytest.mark.parametrize(
    ("name", "precision"), [("model.int8-cpu.onnx", "int8"), ("model.fp16.onnx", "fp16")]
)
def test_a_bare_exported_model_states_its_own_facts(tmp_path, name, precision):
    """Without a manifest, the precision and id come from the model's `gaitmil.*` metadata."""
    from gaitcontract.manifest import find_manifest, read_manifest

    shipped = DEMO / name
    bare = tmp_path / name
    shutil.copy(shipped, bare)
    with create_runner("onnxruntime", bare) as runner:
        facts = runner.facts
    assert facts.manifest is None
    assert facts.precision == precision
    assert facts.model_id == read_manifest(find_manifest(shipped)).model_id


def test_a_model_that_states_no_precision_is_refused(tmp_path):
    from edge.runners.base import ModelFacts, ModelFile, complete_facts

    model = ModelFile(tmp_path / "m.bin", b"", "0" * 64, None)
    with pytest.raises(ModelError, match="neither a manifest nor .* says the model's precision"):
        complete_facts(ModelFacts((1, 8, 64, 44)), model, "test runner")
    facts = complete_facts(ModelFacts((1, 8, 64, 44), precision="fp32"), model, "test runner")
    assert facts.model_id == "m-000000000000"  # the one fallback: file stem and sha256 prefix
