"""The systemd units: `systemd-analyze verify` clean (any output fails), and the settings issue 8 asks for."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = ("gaitmil-edge.service", "gaitmil-engine.service")


def render(template: Path, values: dict[str, str]) -> str:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail(
            "systemd-analyze is not installed: run scripts/system-deps.sh (apt-get install systemd)"
        )
    return found


@pytest.fixture
def rendered(tmp_path) -> Path:
    """Both units rendered with paths that exist here (verify fails on a missing ExecStart binary)."""
    (tmp_path / "kiosk.toml").write_text("")
    (tmp_path / "model.onnx").write_bytes(b"")
    values = {
        "PREFIX": str(tmp_path),
        "PYTHON": sys.executable,
        "USER": "root",
        "CONFIG": str(tmp_path / "kiosk.toml"),
        "ONNX": str(tmp_path / "model.onnx"),
        "ENGINE": str(tmp_path / "model.engine"),
    }
    out = tmp_path / "units"
    out.mkdir()
    for unit in UNITS:
        (out / unit).write_text(render(REPO / "systemd" / f"{unit}.in", values))
    return out


def test_systemd_analyze_verify_prints_nothing(rendered):
    done = subprocess.run(
        [_analyze(), "verify", *(str(rendered / u) for u in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on parse warnings: any output at all is a failure
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_verify_would_catch_a_typo(rendered):
    unit = rendered / "gaitmil-edge.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    done = subprocess.run(
        [_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert "WatchdogSecs" in done.stdout + done.stderr


def _unit(rendered: Path, name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(_joined((rendered / name).read_text()))
    return parser


def _joined(text: str) -> str:
    # repeated keys (DeviceAllow=) are joined so configparser keeps them all
    seen: dict[tuple[str, str], int] = {}
    lines = []
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif "=" in line and not line.startswith("#"):
            key = line.split("=", 1)[0]
            n = seen.get((section, key), 0)
            seen[(section, key)] = n + 1
            if n:
                line = f"{key}#{n}={line.split('=', 1)[1]}"
        lines.append(line)
    return "\n".join(lines)


def test_kiosk_unit_has_the_settings_of_issue_8(rendered):
    unit = _unit(rendered, "gaitmil-edge.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert "StartLimitIntervalSec" in unit["Unit"] and "StartLimitBurst" in unit["Unit"]
    assert (
        "StartLimitIntervalSec" not in service
    )  # systemd ignores it in [Service]; it belongs in [Unit]
    assert set(service["SupplementaryGroups"].split()) == {"video", "render", "plugdev"}
    assert (
        service["StateDirectory"] == "gaitmil-edge"
        and service["ConfigurationDirectory"] == "gaitmil-edge"
    )
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
    }.items():
        assert service[key] == value, key
    assert "PrivateDevices" not in service  # it would hide the cameras
    allowed = {v.split()[0] for k, v in service.items() if k.split("#")[0] == "DeviceAllow"}
    assert {"char-video4linux", "char-usb_device", "/dev/nvmap"} <= allowed
    assert "config check" in service["ExecStartPre"]
    assert "-m edge run" in service["ExecStart"]
    assert "gaitmil-engine.service" in unit["Unit"]["After"]


def test_engine_unit_is_a_oneshot_before_the_kiosk(rendered):
    unit = _unit(rendered, "gaitmil-engine.service")
    assert unit["Service"]["Type"] == "oneshot"
    assert unit["Unit"]["Before"] == "gaitmil-edge.service"
    # the store's active ONNX -> `python -m export engine --reuse-if-current` (tests/edge/test_model_store.py)
    assert "-m edge.model_store build-engine --config" in unit["Service"]["ExecStart"]
