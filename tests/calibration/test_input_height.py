"""Both INT8 forms of a 128x88 model (issue 25, item 2): a 128-px calibration set, made from the
rendered camera masks, quantizes it; a 64-px set is refused with both shapes."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.collect import collect_sim, read_recorded_walk
from calibration.dataset import save_set
from calibration.errors import CalibrationSetError
from calibration.quantize import QuantizeConfig, quantize
from export.onnx_utils import ort_session


@pytest.fixture(scope="module")
def fp32_128(tmp_path_factory):
    from export.onnx_export import ExportConfig, export_onnx
    from export.random_model import make_random_checkpoint

    root = tmp_path_factory.mktemp("fp32_128")
    checkpoint = make_random_checkpoint("tiny", root / "tiny.pt", seed=4, input_height=128)
    return export_onnx(ExportConfig(checkpoint, root, frames=8, parity_walks=2)).onnx_path


def test_both_int8_forms_of_a_128_px_model(fp32_128, tmp_path):
    calib = collect_sim("default", 6, frames=8, height=128)
    assert calib.silhouettes.shape[1:] == (8, 128, 88)
    path, _ = save_set(calib, tmp_path / "calib128.npz")
    for target in ("tensorrt", "cpu"):
        result = quantize(QuantizeConfig(fp32_128, path, target, out=tmp_path / f"{target}.onnx"))
        assert ort_session(result.path).get_inputs()[0].shape == [1, 8, 128, 88]
    small, _ = save_set(collect_sim("default", 3, frames=8), tmp_path / "calib64.npz")
    with pytest.raises(CalibrationSetError, match=r"--frames 8 --input-height 128"):
        quantize(QuantizeConfig(fp32_128, small, "cpu", out=tmp_path / "x.onnx"))


def test_a_recording_of_another_height_is_refused(tmp_path):
    from edge.walks.record import record_walk

    path = record_walk(
        tmp_path, "w1", np.zeros((10, 64, 44), np.uint8), np.arange(10, dtype=np.float64), {}
    )
    assert read_recorded_walk(path, 8)[0].shape == (8, 64, 44)
    with pytest.raises(CalibrationSetError, match="never resized"):
        read_recorded_walk(path, 8, height=128)


def test_the_split_encoder_of_a_128_px_model_and_its_int8_forms(fp32_128, capsys):
    import json

    from calibration.__main__ import main
    from export.split import export_split

    folder = fp32_128.parent
    result = export_split(folder / "tiny.pt", folder, frames=8, parity_walks=2)
    assert result.contract["encoder_input"]["shape"][1:] == [128, 88]
    assert result.parity is not None  # checked on simulated 128-px walks
    args = ["split-encoders", "--out", str(folder), "--sim", "default", "--count", "3"]
    assert main([*args, "--frames", "8", "--walks", "2"]) == 0, capsys.readouterr().err
    forms = json.loads((folder / "model.split.json").read_text())["encoders"]
    assert {"int8", "int8-cpu"} <= set(forms)
