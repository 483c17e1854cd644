"""python -m export: the commands end to end, exit codes and messages."""

from __future__ import annotations

import subprocess
import sys

import pytest

from export.__main__ import main


@pytest.mark.slow  # two exports and an FP16 conversion: ~17 s on the shared machine
def test_onnx_then_fp16_commands(tiny_checkpoint, tmp_path):
    out = tmp_path / "m"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            "onnx",
            "--checkpoint",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--frames",
            "16",
            "--walks",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "parity onnxruntime vs pytorch: 6 walks, argmax agreement 100.00%" in run.stdout
    assert (out / "model.onnx").is_file() and (out / "model.manifest.json").is_file()
    assert (
        main(
            ["fp16", str(out / "model.onnx"), "--out", str(out / "model.fp16.onnx"), "--walks", "6"]
        )
        == 0
    )
    assert (out / "model.fp16.manifest.json").is_file()


def test_bad_input_exit_codes(tiny_checkpoint, tmp_path, capsys):
    assert main(["onnx", "--preset", "enormous", "--out", str(tmp_path), "--walks", "0"]) == 2
    assert "tiny" in capsys.readouterr().err
    assert (
        main(
            ["onnx", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path), "--frames", "2"]
        )
        == 2
    )
    assert "out of range" in capsys.readouterr().err
    assert main(["onnx", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["fp16", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "x.onnx")]) == 2


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["onnx", "--help"], ["(default: 200)", "--batch BATCH"]),
        (["audit", "--help"], ["{auto,tensorrt,cpu}", "(default: auto)"]),
        (["fp16", "--help"], ["(default: ['Softmax'"]),
        (["verify", "--help"], ["(default: 0.99)"]),
    ],
)
def test_help_shows_defaults_and_choices(argv, shown, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # wrapping depends on the terminal
    for text in shown:
        assert text in out, text
    assert "(default: None)" not in out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "gaitmil-edge" in capsys.readouterr().out
