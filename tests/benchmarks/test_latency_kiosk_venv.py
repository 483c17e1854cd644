"""`python -m benchmarks.latency` in a kiosk venv: no onnx, no torch (DEPLOY.md runs it there).

The child process installs an import hook that refuses onnx and torch, as a venv without them
would, and runs the benchmark on the demo's ONNX with ONNX Runtime: it must finish with its
numbers, say up front that the roofline columns are left out, and never import either package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

KIOSK_VENV = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("onnx", "torch"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
from benchmarks.latency import main
code = main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("onnx", "torch"))
sys.exit(code if not leaked else f"imported {leaked}")
"""


def test_latency_runs_without_onnx_and_torch(tmp_path):
    out = tmp_path / "latency.json"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            KIOSK_VENV,
            "--backend",
            f"onnxruntime:{REPO / 'models/demo/model.onnx'}",
            "--iters",
            "3",
            "--warmup",
            "1",
            "--walks",
            "2",
            "--probe",
            "none",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "onnx is not installed" in done.stderr
    report = json.loads(out.read_text())
    assert report["backends"][0]["samples_ms"]["end_to_end"]
