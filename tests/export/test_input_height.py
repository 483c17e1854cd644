"""Export's own walks follow a 128x88 model (issue 25, item 2): the FP16 check, a bundle's check
set and `make models` (calibration.demo_artifacts) make their simulated walks at the model's
height, never at the 64-px default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.random_model import make_random_checkpoint
from tests.export.conftest import regenerate_small

FRAMES = 8


@pytest.fixture(scope="module")
def folder_128(tmp_path_factory) -> Path:
    """A tiny untrained 128x88 model folder: checkpoint, model.onnx + manifest, simulated card."""
    from export.onnx_export import ExportConfig, export_onnx

    folder = tmp_path_factory.mktemp("export_128")
    ckpt = make_random_checkpoint("tiny", folder / "tiny.pt", seed=6, input_height=128)
    result = export_onnx(ExportConfig(ckpt, folder, frames=FRAMES, parity_walks=2))
    assert result.parity is not None  # parity ran on 128-px simulated walks
    (folder / "card.json").write_text(
        json.dumps({"referral_threshold": 0.4, "trained_on": "simulated"})
    )
    return folder


def test_the_fp16_check_walks_are_made_at_the_model_height(folder_128, capsys):
    from export.__main__ import main

    out = folder_128.parent / "fp16_128.onnx"
    argv = ["fp16", str(folder_128 / "model.onnx"), "--out", str(out), "--walks", "3"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "3 walks" in capsys.readouterr().out


def test_a_bundle_check_set_holds_walks_at_the_model_height(folder_128, tmp_path):
    from export.bundle import BundleConfig, _check_walks, make_bundle

    out = make_bundle(BundleConfig(folder_128, tmp_path / "m.gmb", None, None, check_walks=2))
    assert out.is_file()
    walks = _check_walks(BundleConfig(folder_128, out, None, None, check_walks=2), [1, 8, 128, 88])
    assert walks.shape == (2, FRAMES, 128, 88)


def test_a_check_set_of_another_height_is_refused_with_both_shapes(folder_128, tmp_path):
    from export.bundle import BundleConfig, make_bundle
    from export.errors import ExportError

    small = tmp_path / "small.npz"
    np.savez(small, silhouettes=np.zeros((2, FRAMES, 64, 44), np.float32))
    config = BundleConfig(folder_128, tmp_path / "m.gmb", None, None, check_set=small)
    with pytest.raises(ExportError, match=r"\[2, 8, 64, 44\].*\[N, T, 128, 88\]"):
        make_bundle(config)
    assert not (tmp_path / "m.gmb").exists()


@pytest.mark.slow
def test_make_models_regenerates_a_128_px_checkpoint_at_its_height(folder_128, tmp_path):
    from calibration.demo_artifacts import check_current
    from export.onnx_utils import ort_session

    out = tmp_path / "demo"
    paths = regenerate_small(folder_128 / "tiny.pt", tmp_path, walks=4)
    for path in paths.values():
        assert ort_session(path).get_inputs()[0].shape[2:] == [128, 88], path.name
    with np.load(tmp_path / "work" / "calib.npz") as calib:
        assert calib["silhouettes"].shape[2:] == (128, 88)
    assert check_current(folder_128 / "tiny.pt", out) == []
