"""export fp16: FP16 ONNX with FP32 I/O runs in ONNX Runtime and agrees with FP32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from export.audit import audit_model
from export.errors import ExportError
from export.fp16 import convert_fp16, upstream_nodes
from export.onnx_utils import get_metadata, load_onnx, ort_session
from gaitcontract import spec
from gaitcontract.manifest import verify_artifact
from tests.export.conftest import simulated


@pytest.fixture(scope="module")
def fp16(tiny_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16") / "model.fp16.onnx"
    return convert_fp16(tiny_onnx.onnx_path, out, walks=simulated(24, 16, seed=5))


def test_fp16_agrees_with_fp32(fp16):
    print(fp16.parity.format())
    assert fp16.parity.walks == 24
    assert fp16.parity.argmax_agreement >= 0.995
    assert fp16.parity.max_abs_dprob < 5e-3


def test_fp16_keeps_fp32_io_and_names(fp16):
    session = ort_session(fp16.path)
    assert [i.name for i in session.get_inputs()] == [spec.INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == list(spec.OUTPUT_NAMES)
    assert {v.type for v in session.get_inputs() + session.get_outputs()} == {"tensor(float)"}
    model = load_onnx(fp16.path)
    dtypes = {init.data_type for init in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in dtypes
    onnx.checker.check_model(model, full_check=True)


def test_phase_lookup_and_softmax_stay_fp32(fp16, tiny_onnx):
    model = load_onnx(tiny_onnx.onnx_path)
    lookup = upstream_nodes(model, "ArgMin")
    assert any("ArgMin" in name for name in lookup) and len(lookup) > 3
    assert fp16.kept_fp32_nodes == lookup
    assert "Softmax" in fp16.manifest.extra["fp32_ops"]


def test_fp16_manifest_and_audit(fp16):
    manifest = verify_artifact(fp16.path)
    assert manifest.precision == "fp16"
    assert get_metadata(load_onnx(fp16.path))["precision"] == "fp16"
    assert audit_model(fp16.path).ok


def test_converting_fp16_again_is_refused(fp16, tmp_path):
    with pytest.raises(ExportError, match="not an FP32 model"):
        convert_fp16(fp16.path, tmp_path / "again.onnx")


def test_fp16_outputs_are_finite(fp16):
    session = ort_session(fp16.path)
    probs = session.run(["probs"], {spec.INPUT_NAME: simulated(1, 16, seed=9)})[0]
    assert np.isfinite(probs).all() and np.allclose(probs.sum(), 1.0, atol=1e-3)
