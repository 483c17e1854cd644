"""The shipped demo models: current (regenerated weights equal) and passing the audit.

models/demo/checkpoint.pt is shipped: a missing checkpoint or a missing or stale
artifact FAILS (never skips); `make models` regenerates them, `make models-check`
runs the same check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calibration.demo_artifacts import check_current
from gaitcontract.manifest import sha256_file, verify_artifact
from tests.export.conftest import regenerate_small

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"


def test_shipped_demo_models_are_current():
    checkpoint = DEMO / "checkpoint.pt"
    assert checkpoint.is_file(), "models/demo/checkpoint.pt is missing (it is shipped: restore it)"
    problems = check_current(checkpoint, DEMO)
    assert not problems, (
        "shipped demo models are missing or stale (run `make models`):\n" + "\n".join(problems)
    )


@pytest.mark.slow
def test_regenerate_then_check(tiny_checkpoint, tmp_path):
    out = tmp_path / "demo"
    paths = regenerate_small(tiny_checkpoint, tmp_path, walks=6)
    for path in paths.values():
        verify_artifact(path)
    for name in ("calibration.json", "report.json", "report.md", "report.png"):
        assert (out / name).is_file(), name
    assert check_current(tiny_checkpoint, out) == []
    # a stale INT8 model (made from another FP32 export) is caught
    manifest = out / "model.int8-cpu.manifest.json"
    manifest.write_text(manifest.read_text().replace(sha256_file(out / "model.onnx"), "0" * 64))
    assert any("model.int8-cpu.onnx" in p for p in check_current(tiny_checkpoint, out))
    (out / "model.fp16.onnx").unlink()
    assert any("model.fp16.onnx" in p for p in check_current(tiny_checkpoint, out))
