"""One version source: gaitcontract.__version__ is what setup.py, every --version and the status name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gaitcontract

ROOT = Path(__file__).resolve().parents[2]


def test_setup_reads_the_one_version():
    out = (
        subprocess.run(
            [sys.executable, "setup.py", "--version"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == gaitcontract.__version__


def test_command_line_tools_print_it():
    for module in ("edge", "export", "calibration", "edge.collect"):
        out = subprocess.run(
            [sys.executable, "-m", module, "--version"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert gaitcontract.__version__ in out, module


def test_the_status_message_names_it():
    from edge.publishing.publisher import SOFTWARE

    assert SOFTWARE == f"gaitmil-edge {gaitcontract.__version__}"
