"""systemd/install.sh in a temporary root: the expected files, idempotent, and a clean uninstall."""

from __future__ import annotations

import hashlib
import json
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
    (folder / "card.json").write_text('{"referral_threshold": 0.4, "trained_on": "real"}')
    return folder / "model.int8.onnx"


STORE = "var/lib/gaitmil-edge/models"


def active_files(root: Path) -> dict[str, bytes]:
    """The store's active pointer, and the active model's files, as bytes."""
    store = root / STORE
    pointer = json.loads((store / "active.json").read_text())
    folder = store / pointer["model_id"]
    return {
        "active.json": (store / "active.json").read_bytes(),
        **{p.name: p.read_bytes() for p in sorted(folder.iterdir())},
    }


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
        f"{STORE}/active.json",
        "opt/gaitmil-edge/docs/DEPLOY.md",
    ):
        assert expected in files, expected
    model_id = json.loads((root / STORE / "active.json").read_text())["model_id"]
    assert model_id.startswith("model.int8-")  # no manifest, no card id: name and hash
    assert {f"{STORE}/{model_id}/model.int8.onnx", f"{STORE}/{model_id}/card.json"} <= set(files)
    assert not (root / "opt/gaitmil-edge/models").exists()  # nothing flat any more
    assert (root / "opt/gaitmil-edge/venv/bin/python").exists()
    passwd = (root / "etc/passwd").read_text()
    assert passwd.count("gaitmil:") == 1
    for unit in ("gaitmil-edge.service", "gaitmil-engine.service"):
        text = (root / "etc/systemd/system" / unit).read_text()
        assert "@" not in text.replace("@@", ""), unit  # every placeholder rendered
        assert "/opt/gaitmil-edge/venv/bin/python" in text
    engine = (root / "etc/systemd/system/gaitmil-engine.service").read_text()
    # the engine is built from the store's active ONNX, beside it; never copied in
    assert "-m edge.model_store build-engine --config /etc/gaitmil-edge/kiosk.toml" in engine
    config = (root / "etc/gaitmil-edge/kiosk.toml").read_text()
    assert (
        'runner = "tensorrt"' in config
        and 'site_id = "school-1"' in config
        and 'kiosk_id = "k7"' in config
    )

    # the installed config is valid for the kiosk's own checker
    from edge.config import load_config
    from edge.wiring import screening_threshold

    rooted = tmp_path / "rooted.toml"  # its absolute paths point into the temporary root
    rooted.write_text(config.replace('"/opt/', f'"{root}/opt/').replace('"/var/', f'"{root}/var/'))
    cfg = load_config(rooted, env={})
    assert cfg.model.runner == "tensorrt"
    assert cfg.model.path == root / STORE / model_id / "model.int8.engine"
    assert screening_threshold(cfg).value == 0.4  # the installed model card is found

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
    done = install(tmp_path / "root", "--model", str(model), "--demo-model")
    assert done.returncode != 0 and "not both" in done.stderr


def test_an_upgrade_keeps_the_site_model_and_its_card_byte_identical(tmp_path, model):
    _need_tools()
    root = tmp_path / "root"
    first = install(root, "--model", str(model), "--runner", "onnxruntime")
    assert first.returncode == 0, first.stderr
    installed = active_files(root)
    for _ in range(2):  # the documented upgrade, twice: no --model
        again = install(root, "--runner", "onnxruntime")
        assert again.returncode == 0, again.stderr
        assert "kept the active model" in again.stderr
        assert active_files(root) == installed
    # the demo was never installed next to it
    assert [
        p.name for p in (root / STORE).iterdir() if p.is_dir() and not p.name.startswith(".")
    ] == [json.loads(installed["active.json"])["model_id"]]
    assert "allow_simulated_model" not in (
        root / "etc/gaitmil-edge/kiosk.toml"
    ).read_text().replace("# allow_simulated_model", "")


def test_a_fresh_machine_without_a_model_is_refused_naming_both_flags(tmp_path):
    done = install(tmp_path / "root", "--runner", "onnxruntime")
    assert done.returncode != 0
    assert "--model" in done.stderr and "--demo-model" in done.stderr
    assert not (tmp_path / "root" / "etc" / "passwd").exists()  # refused before creating anything


def test_demo_model_installs_the_demo_and_allows_it_in_a_new_config(tmp_path):
    _need_tools()
    root = tmp_path / "root"
    done = install(root, "--runner", "onnxruntime", "--demo-model")
    assert done.returncode == 0, done.stderr
    pointer = json.loads((root / STORE / "active.json").read_text())
    demo = Path(__file__).resolve().parents[2] / "models" / "demo" / "model.manifest.json"
    assert pointer["model_id"] == json.loads(demo.read_text())["model_id"]
    assert pointer["file"] == "model.onnx"  # on the CPU the demo runs FP32 (install.sh says why)
    config = (root / "etc/gaitmil-edge/kiosk.toml").read_text()
    assert "allow_simulated_model = true" in config and "simulated walks only" in config
