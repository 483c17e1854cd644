"""Accuracy benchmark: FP32, FP16 and INT8 variants of one small model on held-out simulated walks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.accuracy import choose_models, main, simulated_held_out
from benchmarks.errors import BenchmarkError
from benchmarks.report import validate


@pytest.fixture(scope="module")
def variants(tiny_models, tmp_path_factory):
    """The tiny FP32 model, its FP16 conversion and its CPU INT8 quantization (export/ and calibration/ code)."""
    from calibration.quantize import QuantizeConfig, quantize
    from export.fp16 import convert_fp16

    root = tmp_path_factory.mktemp("variants")
    fp32 = root / "model.onnx"
    fp32.write_bytes(tiny_models.onnx.read_bytes())
    fp16 = root / "model.fp16.onnx"
    convert_fp16(fp32, fp16)
    calib = simulated_held_out(12, tiny_models.frames, seed=5)
    int8 = root / "model.int8-cpu.onnx"
    quantize(QuantizeConfig(fp32, Path("<in memory>"), "cpu", out=int8), calib=calib)
    return fp32, fp16, int8


def test_three_precisions_on_held_out_walks(variants, tmp_path, capsys):
    fp32, fp16, int8 = variants
    out = tmp_path / "acc.json"
    code = main(
        [
            "--models",
            str(fp32),
            str(fp16),
            str(int8),
            "--walks",
            "9",
            "--threshold",
            "0.4",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "acc.png"),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    validate(report, "accuracy")
    assert report["settings"]["threshold"] == 0.4 and report["settings"]["walks"] == 9
    rows = report["result"]["models"]
    assert list(rows) == ["fp32", "fp16", "int8-cpu"]
    assert rows["fp32"]["agreement_vs_fp32"] == 1.0 and rows["fp32"]["max_abs_dprob"] == 0.0
    for row in rows.values():
        assert 0.0 <= row["accuracy"] <= 1.0
        assert sum(map(sum, row["confusion_matrix"])) == 9
        assert 0.0 <= row["agreement_vs_fp32"] <= 1.0
    assert rows["fp16"]["max_abs_dprob"] > 0  # a real conversion, not a copy
    printed = capsys.readouterr().out
    assert "int8-cpu" in printed and "not a screening tool" in printed
    assert (tmp_path / "acc.png").read_bytes()[:4] == b"\x89PNG"


def test_reference_must_be_fp32(variants, capsys):
    fp32, fp16, _ = variants
    assert main(["--models", str(fp16), str(fp32), "--walks", "3"]) == 2
    assert "must be the FP32 reference" in capsys.readouterr().err


def test_missing_models_are_named(tmp_path):
    with pytest.raises(BenchmarkError, match="do not exist"):
        choose_models([tmp_path / "nope.onnx"])


def test_held_out_walks_are_balanced_and_labelled():
    held_out = simulated_held_out(6, 16)
    assert held_out.silhouettes.shape == (6, 16, 64, 44)
    assert sorted(held_out.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert held_out.source["seed"] == 101
