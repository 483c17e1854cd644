"""systemd/install.sh in a temporary root: the expected files, idempotent, and a clean uninstall."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "systemd" / "install.sh"


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), "--no-pip", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(root: Path) -> dict[str, str]:
    """Every file (content hash + mode) and symlink (target) under root, venv internals excepted."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if "/venv/" in f"/{rel}/" and not rel.endswith("venv"):
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = (
                hashlib.sha256(path.read_bytes()).hexdigest()[:16] + f" {path.stat().st_mode:o}"
            )
    return out


@pytest.fixture
def model(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.int8.onnx").write_bytes(b"onnx bytes")
    (folder / "card.json").write_text('{"referral_threshold": 0.4}')
    return folder / "model.int8.onnx"


L4T_36 = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 2025\n"


def test_tensorrt_install_adds_the_cuda_python_extra_of_this_cuda_major(tmp_path, model):
    _need_tools()
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text(L4T_36.replace("R36", "R38"))  # JetPack 7: CUDA 13
    done = install(root, "--model", str(model), "--no-start")
    assert done.returncode == 0, done.stderr
    assert (
        "[realsense,cuda13]" in done.stderr
        and 'runner = "tensorrt"' in (root / "etc/gaitmil-edge/kiosk.toml").read_text()
    )
    assert "[realsense,cuda12]" in install(root, "--model", str(model), "--cuda", "12").stderr
    assert "[realsense]" in install(root, "--model", str(model), "--runner", "onnxruntime").stderr


def test_tensorrt_install_without_cuda_facts_asks_for_cuda(tmp_path, model):
    done = install(tmp_path / "root", "--model", str(model), "--runner", "tensorrt")
    assert (
        done.returncode != 0
        and "pass --cuda 12 (JetPack 6) or --cuda 13 (JetPack 7)" in done.stderr
    )
    done = install(tmp_path / "root", "--model", str(model), "--runner", "tensorrt", "--cuda", "11")
    assert done.returncode != 0 and "--cuda must be 12" in done.stderr


def _need_tools():
    for tool in ("systemd-sysusers", "systemctl"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is not installed: run scripts/system-deps.sh (apt-get install systemd)"
            )


def test_install_produces_the_expected_files_and_is_idempotent(tmp_path, model):
    _need_tools()
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text(L4T_36)
    first = install(
        root, "--model", str(model), "--runner", "tensorrt", "--site", "school-1", "--kiosk", "k7"
    )
    assert first.returncode == 0, first.stderr
    # JetPack 6 (L4T R36, CUDA 12.6): cuda-python 12.x comes with the package, before any unit starts
    assert f"{REPO}[realsense,cuda12] (--no-pip)" in first.stderr
    files = snapshot(root)
    for expected in (
        "etc/systemd/system/gaitmil-edge.service",
        "etc/systemd/system/gaitmil-engine.service",
        "etc/systemd/system/multi-user.target.wants/gaitmil-edge.service",
        "etc/systemd/system/multi-user.target.wants/gaitmil-engine.service",
        "etc/sysusers.d/gaitmil-edge.conf",
        "etc/gaitmil-edge/kiosk.toml",
        "etc/gaitmil-edge/kiosk.example.toml",
        "opt/gaitmil-edge/models/model.int8.onnx",
        "opt/gaitmil-edge/models/card.json",
        "opt/gaitmil-edge/docs/DEPLOY.md",
    ):
        assert expected in files, expected
    assert (root / "opt/gaitmil-edge/venv/bin/python").exists()
    assert (root / "var/lib/gaitmil-edge/engines").is_dir()
    passwd = (root / "etc/passwd").read_text()
    assert passwd.count("gaitmil:") == 1
    for unit in ("gaitmil-edge.service", "gaitmil-engine.service"):
        text = (root / "etc/systemd/system" / unit).read_text()
        assert "@" not in text.replace("@@", ""), unit  # every placeholder rendered
        assert "/opt/gaitmil-edge/venv/bin/python" in text
    engine = (root / "etc/systemd/system/gaitmil-engine.service").read_text()
    assert (
        "--onnx /opt/gaitmil-edge/models/model.int8.onnx --out /var/lib/gaitmil-edge/engines/model.int8.engine"
        in engine
    )
    config = (root / "etc/gaitmil-edge/kiosk.toml").read_text()
    assert (
        'runner = "tensorrt"' in config
        and 'site_id = "school-1"' in config
        and 'kiosk_id = "k7"' in config
    )

    # the installed config is valid for the kiosk's own checker
    from edge.config import load_config

    rooted = tmp_path / "rooted.toml"  # its absolute paths point into the temporary root
    rooted.write_text(config.replace('"/opt/', f'"{root}/opt/'))
    cfg = load_config(rooted, env={})
    assert cfg.model.runner == "tensorrt"
    assert cfg.threshold().value == 0.4  # the installed model card is found

    # a second run changes nothing, and keeps the operator's config edits
    (root / "etc/gaitmil-edge/kiosk.toml").write_text(config + "\n# edited by the operator\n")
    edited = snapshot(root)
    second = install(root, "--model", str(model), "--runner", "tensorrt")
    assert second.returncode == 0, second.stderr
    assert snapshot(root) == edited
    assert "kept the existing" in second.stderr


def test_installed_units_verify(tmp_path, model):
    _need_tools()
    root = tmp_path / "root"
    assert install(root, "--model", str(model), "--runner", "onnxruntime").returncode == 0
    # onnxruntime: the engine unit is installed but not enabled
    assert not (root / "etc/systemd/system/multi-user.target.wants/gaitmil-engine.service").exists()
    out = tmp_path / "units"
    out.mkdir()
    for unit in ("gaitmil-edge.service", "gaitmil-engine.service"):
        text = (root / "etc/systemd/system" / unit).read_text()
        # point the absolute paths into the temporary root, where they exist
        (out / unit).write_text(
            text.replace(" /opt/", f" {root}/opt/").replace("=/opt/", f"={root}/opt/")
        )
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(p) for p in sorted(out.iterdir()))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_uninstall_keeps_the_outbox_unless_purged(tmp_path, model):
    _need_tools()
    root = tmp_path / "root"
    assert install(root, "--model", str(model)).returncode == 0
    outbox = root / "var/lib/gaitmil-edge/outbox.sqlite3"
    outbox.write_bytes(b"results waiting")
    done = install(root, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert not (root / "etc/systemd/system/gaitmil-edge.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/gaitmil-edge.service").exists()
    assert not (root / "opt/gaitmil-edge").exists()
    assert outbox.read_bytes() == b"results waiting"
    assert (root / "etc/gaitmil-edge/kiosk.toml").exists()
    assert install(root, "--uninstall", "--purge").returncode == 0
    assert not (root / "var/lib/gaitmil-edge").exists() and not (root / "etc/gaitmil-edge").exists()


def test_bad_options_are_refused(tmp_path, model):
    done = install(tmp_path / "root", "--runner", "cuda", "--model", str(model))
    assert done.returncode != 0 and "--runner must be tensorrt or onnxruntime" in done.stderr
    done = install(tmp_path / "root", "--model", str(tmp_path / "missing.onnx"))
    assert done.returncode != 0 and "no ONNX model found" in done.stderr
