"""RESULTS.md rendering: the issue's targets checked from benchmark JSON files."""

from __future__ import annotations

import json

from benchmarks.results import main, render, targets
from benchmarks.stats import summarize


def _backend(label, e2e, compute, fraction=None):
    return {
        "label": label,
        "stages": {"end_to_end": summarize(e2e), "compute": summarize(compute)},
        "limit": {
            "fraction_of_peak": fraction,
            "achieved_gflops": 120.0 if fraction else None,
            "peak_gflops": 140.0 if fraction else None,
            "macs_per_walk": 2_200_000_000,
            "peak_source": "FP32 matmul probe (numpy, 2048^2, 2 threads)",
        },
    }


def _latency(int8_ms):
    return {
        "backends": [
            _backend("torch:checkpoint.pt", [100.0, 110.0, 120.0], [99.0, 100.0, 101.0]),
            _backend("onnxruntime:model.onnx", [50.0, 52.0], [49.0, 50.0], fraction=120 / 140),
            _backend("onnxruntime:model.int8-cpu.onnx", int8_ms, [x - 1 for x in int8_ms]),
        ]
    }


def _fanin(lost):
    return {
        "settings": {"kiosks": 200, "seconds": 60.0, "rate_per_kiosk": 1.0},
        "lost": lost,
        "sent": 12000,
        "duplicated": 0,
        "latency_ms": summarize([5.0, 9.0]),
        "schedule_lag_ms": summarize([0.1, 0.2]),
    }


def test_targets_met():
    rows = targets(_latency([30.0, 33.0]), _fanin(0))
    assert [r[2] for r in rows] == ["met", "met", "met"]
    assert rows[0][1].startswith("0.29x")  # 31.5 / 110 (medians)
    assert rows[1][1].startswith("86 %")


def test_targets_missed_and_not_run():
    rows = targets(_latency([40.0, 50.0]), _fanin(3))
    assert rows[0][2] == "MISSED" and rows[0][1].startswith("0.41x")
    assert rows[2][2] == "MISSED" and "3 lost of 12000" in rows[2][1]
    assert [r[2] for r in targets(None, None)] == ["not run"] * 3


def test_render_only_from_files(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "latency.json").write_text(json.dumps({**_latency([30.0, 33.0]), "environment": None}))
    (out / "latency.md").write_text("## Latency per walk\nTABLE\n### Stages\nrows")
    (out / "latency.png").write_bytes(b"\x89PNG")
    text = render(out, None, tmp_path / "RESULTS.md")
    assert "### Latency per walk\nTABLE\n#### Stages\nrows" in text
    assert "![latency](results/latency.png)" in text
    assert "_Not run: no fanin.md._" in text
    results = tmp_path / "R.md"
    assert main(["--render-only", "--out-dir", str(out), "--results", str(results)]) == 0
    assert (
        "| ONNX Runtime `cpu` INT8 <= 0.3x PyTorch eager FP32 (median per walk) | 0.29x"
        in results.read_text()
    )


def test_rerun_of_some_parts_keeps_recorded_commands_and_the_leads_text(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "fanin.command").write_text(
        "python -m benchmarks.fanin --broker mqtt://127.0.0.1:1111\n"
    )
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\n## Targets\n\nWhat limits: the CPU has no VNNI.\n\n"
        "## Latency per backend and precision (demo model)\n"
    )
    text = render(
        out,
        {
            "fanin": ["python", "-m", "benchmarks.fanin", "--broker", "mqtt://127.0.0.1:2222"],
            "accuracy": ["python", "-m", "benchmarks.accuracy"],
        },
        results,
    )
    assert "mqtt://127.0.0.1:1111" in text and "2222" not in text  # the command that made the files
    assert (
        "```\npython -m benchmarks.accuracy\n```" in text
    )  # no record yet: the command line given
    assert "What limits: the CPU has no VNNI.\n" in text and "_the lead fills this in" not in text
    assert "_the lead fills this in" in render(out, None, tmp_path / "absent.md")
