"""The environment block (with fake nvidia-smi / Jetson tools) and the report writers."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import numpy as np
import pytest

from benchmarks import env as envmod
from benchmarks.errors import BenchmarkError
from benchmarks.report import (
    environment_markdown,
    markdown_table,
    plot_distributions,
    stats_table,
    write_json,
)
from benchmarks.stats import summarize


def _tool(folder, name, text, code=0):
    path = folder / name
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}\nEOF\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_environment_block_on_this_machine(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"weights")
    block = envmod.environment([model, tmp_path / "absent.onnx"])
    assert block["cpu"]["logical_cores"] >= 1 and block["cpu"]["usable_cores"] >= 1
    assert block["cpu"]["model"]
    assert block["libraries"]["numpy"] == np.__version__
    assert block["libraries"]["tensorrt"] is None or isinstance(block["libraries"]["tensorrt"], str)
    assert block["models"] == {str(model): hashlib.sha256(b"weights").hexdigest()}
    json.dumps(block)  # JSON-ready


def test_gpu_and_jetson_tools_are_read_when_present(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "nvidia-smi", "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB, 1980 MHz")
    _tool(bin_dir, "nvpmodel", "NV Power Mode: MAXN_SUPER\n2")
    _tool(bin_dir, "jetson_clocks", "needs root", code=1)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    model_file = tmp_path / "model"
    model_file.write_text("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00")
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic\n")
    monkeypatch.setattr(envmod, "JETSON_MODEL_FILE", model_file)
    monkeypatch.setattr(envmod, "L4T_RELEASE_FILE", release)

    gpus = envmod.gpu_block()
    assert gpus == [
        {
            "name": "NVIDIA H100 80GB HBM3",
            "driver": "550.54.15",
            "memory": "81559 MiB",
            "max_sm_clock": "1980 MHz",
        }
    ]
    jetson = envmod.jetson_block()
    assert jetson["board"] == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    assert jetson["l4t"].startswith("# R36")
    assert jetson["nvpmodel"].startswith("NV Power Mode: MAXN_SUPER")
    assert jetson["jetson_clocks"] is None  # failed without root: recorded as unknown, not an error
    block = envmod.environment()
    line = envmod.describe_machine(block)
    assert "H100" in line and "Orin Nano" in line and "MAXN_SUPER" in line
    text = environment_markdown(block)
    assert "run as root" in text and "NV Power Mode: MAXN_SUPER; 2" in text


def test_no_jetson_off_a_jetson(tmp_path, monkeypatch):
    monkeypatch.setattr(envmod, "JETSON_MODEL_FILE", tmp_path / "absent")
    monkeypatch.setattr(envmod, "L4T_RELEASE_FILE", tmp_path / "absent2")
    assert envmod.jetson_block() is None


def test_tables():
    table = markdown_table(["a", "b"], [["x", "1"]])
    assert table.splitlines() == ["| a | b |", "| :--- | ---: |", "| x | 1 |"]
    rendered = stats_table([("e2e", summarize([1.0, 2.0, 3.0])), ("gpu", None)])
    lines = rendered.splitlines()
    assert lines[0].startswith("|  | min (ms) | mean (ms) | median (ms) | p90 (ms)")
    assert lines[2].startswith("| e2e | 1.00 | 2.00 | 2.00 |")
    assert lines[3] == "| gpu | - | - | - | - | - | - | - |"


def test_json_and_plot(tmp_path):
    path = write_json({"x": np.float32(1.5), "n": np.int64(3)}, tmp_path / "sub" / "r.json")
    assert json.loads(path.read_text()) == {"x": 1.5, "n": 3}
    png = plot_distributions({"a": [1.0, 2.0, 3.0], "b": [2.0, 2.5]}, tmp_path / "p.png", "t")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(BenchmarkError):
        plot_distributions({}, tmp_path / "q.png", "t")
