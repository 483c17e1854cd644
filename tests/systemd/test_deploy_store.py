"""DEPLOY.md step 12 (the model store) run as written, against a temporary store.

Every `python -m edge model ...` command of that section runs in order, with the kiosk's
interpreter, config and bundle path pointed at temporary ones; the store must end as the
section says: the new model installed, the previous one active again after the rollback,
the old one removed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.model_store import ModelStore

pytest.importorskip("cryptography")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"
SECTION = "## 12. The model store"


def section_commands() -> list[list[str]]:
    text = (REPO / "docs" / "DEPLOY.md").read_text()
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = body.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if "-m" in words and words[words.index("-m") + 1] == "edge":
            commands.append(words[words.index("-m") + 1 :])
    return commands


def model_folder(tmp_path: Path, model_id: str) -> Path:
    folder = tmp_path / model_id
    folder.mkdir()
    shutil.copyfile(DEMO / "model.onnx", folder / "model.onnx")
    for name in ("model.manifest.json", "card.json"):
        data = json.loads((DEMO / name).read_text())
        data.update(model_id=model_id, trained_on="real")
        (folder / name).write_text(json.dumps(data))
    return folder


def test_step_12_runs_as_written(tmp_path):
    commands = section_commands()
    assert [c[2] for c in commands] == ["install", "list", "rollback", "activate", "remove"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-m", "export", "keygen", "--out", str(tmp_path / "district.key")],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    bundle = tmp_path / "site-2026-11.gmb"
    subprocess.run(
        [sys.executable, "-m", "export", "bundle", "--model-dir", str(model_folder(tmp_path, "site-2026-11")),
         "--out", str(bundle), "--sign-key", str(tmp_path / "district.key"), "--check-walks", "20"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    store = ModelStore(tmp_path / "store")
    for old in ("site-2025-09", "site-2026-05"):  # what the kiosk had before this upgrade
        store.install_folder(model_folder(tmp_path, old))
        store.activate(old)
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\n[model]\nstore = "{store.root}"\n'
        f'trusted_keys = ["{tmp_path / "district.key.pub"}"]\n'
    )
    for command in commands:
        args = [
            str(config)
            if w == "/etc/gaitmil-edge/kiosk.toml"
            else str(bundle)
            if w.endswith(".gmb")
            else w
            for w in command
        ]
        done = subprocess.run(
            [sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"python -m {' '.join(command)}:\n{done.stderr}"
        if command[2] == "install":
            assert "active: site-2026-11 model.onnx" in done.stdout
        if command[2] == "list":
            assert "* site-2026-11" in done.stdout and "signer=district.key:" in done.stdout
    active = store.active()
    assert active is not None and active.model_id == "site-2026-05"
    assert [e.model_id for e in store.entries()] == ["site-2026-05", "site-2026-11"]
