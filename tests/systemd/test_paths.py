"""The paths the docs and the example config name are the ones the units and install.sh use, and
everything the kiosk writes lies where the hardened unit lets it write (ProtectSystem=strict)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "gaitmil-edge.service.in"
EXAMPLE = REPO / "edge" / "data" / "kiosk.example.toml"
# every doc, the example config and the settings' descriptions name the installed folders
DOCS = (
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    EXAMPLE,
    REPO / "edge" / "settings.py",
)


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def writable_dirs() -> list[Path]:
    """What gaitmil-edge.service may write under ProtectSystem=strict (besides PrivateTmp)."""
    settings = unit_settings(UNIT.read_text())
    assert settings["ProtectSystem"] == ["strict"]
    dirs = [
        Path("/var/lib") / name
        for value in settings.get("StateDirectory", [])
        for name in value.split()
    ]
    dirs += [
        Path(p.lstrip("-")) for value in settings.get("ReadWritePaths", []) for p in value.split()
    ]
    return dirs


def under_writable(path: str) -> bool:
    return any(Path(path) == d or d in Path(path).parents for d in writable_dirs())


def config_dir() -> Path:
    (name,) = unit_settings(UNIT.read_text())["ConfigurationDirectory"]
    return Path("/etc") / name


def test_the_unit_writes_only_to_its_state_directory():
    assert writable_dirs() == [Path("/var/lib/gaitmil-edge")]
    assert config_dir() == Path("/etc/gaitmil-edge")


def test_the_example_record_dir_is_writable_by_the_unit():
    (record_dir,) = re.findall(r'^#?\s*record_dir\s*=\s*"([^"]+)"', EXAMPLE.read_text(), re.M)
    assert under_writable(record_dir), (
        f"example record_dir {record_dir} is read-only under ProtectSystem=strict"
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_the_installed_etc_and_var_lib_folders(doc):
    text = doc.read_text()
    etc = set(re.findall(r"/etc/gaitmil[\w-]*", text))
    state = set(re.findall(r"/var/lib/gaitmil[\w-]*", text))
    assert etc <= {str(config_dir())}, f"{doc.name} names {sorted(etc)}"
    assert state <= {str(d) for d in writable_dirs()}, f"{doc.name} names {sorted(state)}"


def test_installed_config_keeps_state_and_recordings_where_the_unit_can_write(tmp_path):
    model = tmp_path / "model" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes(b"onnx bytes")
    (model.parent / "card.json").write_text('{"referral_threshold": 0.4, "trained_on": "real"}')
    root = tmp_path / "root"
    done = subprocess.run(
        [
            "bash",
            str(REPO / "systemd" / "install.sh"),
            "--root",
            str(root),
            "--no-pip",
            "--runner",
            "onnxruntime",
            "--model",
            str(model),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    config = (root / config_dir().relative_to("/") / "kiosk.toml").read_text()
    paths = dict(
        re.findall(r'^#?\s*(state_dir|record_dir|site_model)\s*=\s*"([^"]+)"', config, re.M)
    )
    assert set(paths) == {"state_dir", "record_dir", "site_model"}
    for key, path in paths.items():
        assert under_writable(path), f"installed {key} = {path} is read-only for the unit"

    from edge.config import load_config

    cfg = load_config(
        None, {"privacy.record_walks": True, "privacy.record_dir": paths["record_dir"]}, env={}
    )
    assert str(cfg.privacy.record_dir) == paths["record_dir"]
