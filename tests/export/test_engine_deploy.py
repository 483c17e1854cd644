"""gaitmil-engine.service's command on a kiosk install: no torch, no onnx, TensorRT from JetPack.

The unit's own ExecStart line runs in a subprocess whose interpreter cannot import torch
or onnx (tests/fakes/kiosk_site/sitecustomize.py) and sees the fake TensorRT and
cuda-python; the engine it leaves must be accepted by the TensorRT runner. And the
cuda-python extras are bounded per CUDA major.
"""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
KIOSK_SITE = REPO / "tests" / "fakes" / "kiosk_site"


def _kiosk_env(tensorrt: str = "10.3.0.30", bindings: str = "12") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(
        PYTHONPATH=f"{KIOSK_SITE}{os.pathsep}{REPO}",
        GAITMIL_FAKE_TENSORRT=tensorrt,
        GAITMIL_FAKE_CUDA_BINDINGS=bindings,
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _exec_start(config: Path, state: Path) -> list[str]:
    text = (REPO / "systemd" / "gaitmil-engine.service.in").read_text()
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))[len("ExecStart=") :]
    for key, value in {
        "@PYTHON@": sys.executable,
        "@CONFIG@": str(config),
        "%S": str(state),
    }.items():
        line = line.replace(key, value)
    return shlex.split(line)


def test_the_shim_really_hides_torch_and_onnx(tmp_path):
    for module in ("torch", "onnx"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            env=_kiosk_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0 and "a kiosk install has no" in done.stderr


@pytest.mark.parametrize("tensorrt, bindings", [("10.3.0.30", "12"), ("11.4.1", "13")])
def test_engine_unit_command_builds_then_reuses_without_torch_or_onnx(
    tiny_onnx, tmp_path, monkeypatch, tensorrt, bindings
):
    from edge.model_store import ModelStore

    folder = tmp_path / "site-model"
    folder.mkdir()
    shutil.copy(tiny_onnx.onnx_path, folder / "model.onnx")
    shutil.copy(tiny_onnx.manifest_path, folder / "model.manifest.json")
    (folder / "card.json").write_text('{"referral_threshold": 0.5, "trained_on": "real"}')
    state = tmp_path / "var-lib"
    # the store as install.sh leaves it: the model installed and active, the config naming it
    store = ModelStore(state / "gaitmil-edge" / "models")
    entry, _ = store.install_folder(folder)
    store.activate(entry.model_id)
    onnx = entry.folder / "model.onnx"
    engine = entry.folder / "model.engine"  # built beside its ONNX, in the store
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'state_dir = "{state / "gaitmil-edge"}"\n[model]\nstore = "{store.root}"\nrunner = "tensorrt"\n'
    )
    command = _exec_start(config, state)
    assert "build-engine" in command  # which runs export engine --reuse-if-current
    run = [
        subprocess.run(
            command,
            env=_kiosk_env(tensorrt, bindings),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for _ in range(2)
    ]
    assert run[0].returncode == 0, run[0].stderr
    assert "built" in run[0].stdout and engine.is_file()
    assert run[1].returncode == 0 and "is current" in run[1].stdout, run[1].stdout + run[1].stderr
    assert list(
        (state / "gaitmil-edge" / "timing-cache").glob("timing.trt*.cache")
    )  # kept in StateDirectory

    # the kiosk (this process, same fake GPU) accepts the pair the oneshot left
    from edge.runners.registry import create_runner
    from gaitcontract.spec import INPUT_NAME
    from tests.fakes.install import install

    install(monkeypatch, tensorrt=tensorrt, cuda_bindings=int(bindings))
    with create_runner("tensorrt", engine, onnx_path=str(onnx)) as runner:
        assert runner.infer({INPUT_NAME: np.zeros(runner.input_shape, np.float32)})[
            "probs"
        ].shape == (1, 3)


def _extras() -> dict[str, list[str]]:
    """setup.py's EXTRAS, from its top-level assignments (setup() itself is not run)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    namespace: dict = {"__file__": str(REPO / "setup.py")}
    body = [
        node for node in tree.body if isinstance(node, (ast.Assign, ast.Import, ast.ImportFrom))
    ]
    exec(compile(ast.Module(body=body, type_ignores=[]), "setup.py", "exec"), namespace)  # noqa: S102
    return namespace["EXTRAS"]


def test_cuda_python_extras_are_bounded_per_cuda_major():
    from packaging.requirements import Requirement

    extras = _extras()

    def allows(extra: str, version: str) -> bool:
        specs = [
            Requirement(r).specifier for r in extras[extra] if Requirement(r).name == "cuda-python"
        ]
        assert len(specs) == 1, f"[{extra}] must pin cuda-python exactly once"
        return specs[0].contains(version)

    for extra in ("cuda12", "tensorrt-cu12"):  # JetPack 6 / CUDA 12.6: never 13.x
        assert allows(extra, "12.6.2") and allows(extra, "12.9.4")
        assert not allows(extra, "13.0.0") and not allows(extra, "12.5.0")
    for extra in ("cuda13", "tensorrt-cu13"):  # JetPack 7 / CUDA 13
        assert allows(extra, "13.0.3") and allows(extra, "13.4.4")
        assert not allows(extra, "14.0.0") and not allows(extra, "12.9.4")
    for extra, requirements in extras.items():  # nowhere an unbounded cuda-python
        for text in requirements:
            requirement = Requirement(text)
            if requirement.name == "cuda-python":
                assert any(s.operator == "<" for s in requirement.specifier), (extra, text)
