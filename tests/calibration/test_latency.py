"""The latency helper measures real runs (numbers are printed by the command, not asserted)."""

from __future__ import annotations

from calibration.__main__ import main
from calibration.latency import format_table, measure


def test_measure_and_table(fp32_16, capsys):
    result = measure(fp32_16, threads=1, runs=2, warmup=1)
    assert result.batch == 1 and result.frames == 16 and result.runs == 2
    assert 0 < result.min_ms <= result.median_ms <= result.p90_ms
    table = format_table([result, result], result)
    assert "1.00x" in table and "model.onnx" in table
    assert main(["latency", str(fp32_16), "--runs", "2", "--threads", "1"]) == 0
    assert "median ms/walk" in capsys.readouterr().out
