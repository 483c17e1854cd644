"""calibration report on a briefly trained model: INT8 and FP16 agreement targets, report files."""

from __future__ import annotations

import json

import pytest

from calibration.__main__ import main
from calibration.quantize import QuantizeConfig, quantize
from calibration.report import (
    FP16_MIN_AGREEMENT,
    INT8_MAX_ACCURACY_DROP,
    INT8_MIN_AGREEMENT,
    agreement_bounds,
    build_report,
    meets_target,
)

# Bounds on the mean |dprob| against FP32 on the briefly trained model's held-out walks.
INT8_MEAN_DPROB_BOUND = 0.01
FP16_MEAN_DPROB_BOUND = 0.002


def test_agreement_interval_matches_clopper_pearson():
    from scipy.stats import beta

    low, high = agreement_bounds(29, 30)
    assert abs(low - beta.ppf(0.025, 29, 2)) < 1e-9 and abs(high - beta.ppf(0.975, 30, 1)) < 1e-9
    assert agreement_bounds(30, 30)[1] == 1.0 and agreement_bounds(0, 30)[0] == 0.0


def test_target_is_missed_only_when_the_sample_shows_it():
    fp32 = {"accuracy": 0.8}

    def row(agreement, accuracy=0.8):
        return {"agreement_vs_fp32": agreement, "accuracy": accuracy}

    assert meets_target("int8", row(INT8_MIN_AGREEMENT), fp32, 600) is True
    assert (
        meets_target("int8", row(29 / 30, 0.8 - 1 / 30), fp32, 30) is None
    )  # one flip: cannot tell
    assert meets_target("int8", row(27 / 30), fp32, 30) is False  # interval wholly below 99 %
    assert meets_target("int8", row(0.975), fp32, 600) is False
    assert meets_target("int8", row(0.995, 0.8 - 5 * INT8_MAX_ACCURACY_DROP), fp32, 600) is False
    assert meets_target("fp16", row(FP16_MIN_AGREEMENT), fp32, 600) is True
    assert meets_target("fp32", row(1.0), fp32, 600) is None


@pytest.fixture(scope="module")
def models(trained, tmp_path_factory):
    from export.fp16 import convert_fp16

    root = tmp_path_factory.mktemp("report")
    paths = {"fp32": trained["fp32"]}
    for target in ("tensorrt", "cpu"):
        paths[target] = quantize(
            QuantizeConfig(
                trained["fp32"], trained["calib"], target, out=root / f"model.{target}.onnx"
            )
        ).path
    paths["fp16"] = convert_fp16(trained["fp32"], root / "model.fp16.onnx").path
    return paths


@pytest.mark.slow
def test_held_out_agreement_meets_targets(models, trained):
    report = build_report(
        models["fp32"], models["fp16"], [models["tensorrt"], models["cpu"]], trained["held_out"]
    )
    rows = report["models"]
    assert set(rows) == {"fp32", "fp16", "int8-tensorrt", "int8-cpu"}
    assert report["walks"] == 30
    # 30 walks cannot show 99 % agreement (one near-tie flip is 96.7 %) and the flips
    # differ between CPUs' INT8 kernels, so what is asserted is the error itself
    # (mean |dprob|, the same on any CPU within rounding) and that no target is
    # missed beyond what the sample size explains.
    for name in ("int8-tensorrt", "int8-cpu"):
        print(
            name,
            rows[name]["agreement_vs_fp32"],
            rows[name]["mean_abs_dprob"],
            rows[name]["max_abs_dprob"],
        )
        assert rows[name]["mean_abs_dprob"] <= INT8_MEAN_DPROB_BOUND
        assert rows[name]["meets_target"] is not False
    assert rows["fp16"]["mean_abs_dprob"] <= FP16_MEAN_DPROB_BOUND
    assert rows["fp16"]["meets_target"] is not False
    assert rows["fp32"]["agreement_vs_fp32"] == 1.0 and rows["fp32"]["max_abs_dprob"] == 0.0


@pytest.mark.slow
def test_cli_writes_json_markdown_png(models, trained, tmp_path, capsys):
    code = main(
        [
            "report",
            "--fp32",
            str(models["fp32"]),
            "--int8",
            str(models["cpu"]),
            "--data",
            str(trained["held_out"]),
            "--json",
            str(tmp_path / "r.json"),
            "--md",
            str(tmp_path / "r.md"),
            "--png",
            str(tmp_path / "r.png"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| int8-cpu |" in out and "not a screening tool" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["models"]["int8-cpu"]["per_class"]["positive"]["sensitivity"] >= 0.0
    assert (tmp_path / "r.md").read_text().count("|") > 20
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cpu", "tensorrt"])
def test_sensitivity_ranks_blocks(models, trained, target):
    from calibration.dataset import load_set
    from calibration.report import markdown, sensitivity

    blocks = {"stem": ["/model/encoder/stem/*"], "layer4": ["/model/encoder/layers/layers.3/*"]}
    ranked = sensitivity(
        models["fp32"],
        load_set(trained["calib"]),
        load_set(trained["held_out"]),
        target=target,
        blocks=blocks,
    )
    assert {r["block"] for r in ranked} == set(blocks)
    assert ranked[0]["agreement_vs_fp32"] <= ranked[1]["agreement_vs_fp32"]
    assert all(r["mean_abs_dprob"] > 0 for r in ranked)  # each block really was quantized
    table = markdown(
        {"models": {}, "walks": 0, "note": "", "sensitivity": ranked, "sensitivity_target": target}
    )
    assert f"({target} target)" in table


def test_unlabelled_held_out_is_refused(fp32_16, tmp_path):
    import numpy as np

    from calibration.dataset import CalibrationSet, save_set
    from calibration.errors import CalibrationError

    path, _ = save_set(
        CalibrationSet(np.zeros((2, 16, 64, 44), np.uint8), np.full(2, -1), ["x", "x"]),
        tmp_path / "site.npz",
    )
    with pytest.raises(CalibrationError, match="without labels"):
        build_report(fp32_16, None, [], path)
