"""The kiosk's model store: install, activate, rollback, remove, and a kill in the middle of an install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import ModelError
from edge.model_store import ModelStore
from edge.model_store.cli import main as model_main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"


def model_folder(tmp_path: Path, name: str, model_id: str, trained_on: str = "real") -> Path:
    """A copy of the demo's FP32 model under another id (the bytes stay loadable)."""
    folder = tmp_path / name
    folder.mkdir()
    shutil.copyfile(DEMO / "model.onnx", folder / "model.onnx")
    manifest = json.loads((DEMO / "model.manifest.json").read_text())
    manifest.update(model_id=model_id, trained_on=trained_on)
    (folder / "model.manifest.json").write_text(json.dumps(manifest))
    card = json.loads((DEMO / "card.json").read_text())
    card.update(model_id=model_id, trained_on=trained_on)
    (folder / "card.json").write_text(json.dumps(card))
    (folder / "checkpoint.pt").write_bytes(b"a pickle: never copied")
    return folder


def test_install_activate_rollback_remove(tmp_path):
    store = ModelStore(tmp_path / "store")
    first, new = store.install_folder(model_folder(tmp_path, "a", "site-a"))
    assert new and first.model_id == "site-a" and first.trained_on == "real"
    assert not (first.folder / "checkpoint.pt").exists()  # pickles stay off the kiosk
    assert store.active() is None
    store.activate("site-a")
    store.install_folder(model_folder(tmp_path, "b", "site-b"))
    store.activate("site-b")
    active = store.active()
    assert active is not None and active.model_id == "site-b" and active.precision == "fp32"
    with pytest.raises(ModelError, match="site-b is the active model"):
        store.remove("site-b")
    assert store.rollback().model_id == "site-a"
    store.remove("site-b")
    assert [e.model_id for e in store.entries()] == ["site-a"]
    with pytest.raises(ModelError, match="no earlier model"):
        store.rollback()


def test_reinstalling_the_same_files_changes_nothing_and_other_files_under_the_same_id_are_refused(
    tmp_path,
):
    store = ModelStore(tmp_path / "store")
    folder = model_folder(tmp_path, "a", "site-a")
    store.install_folder(folder)
    entry_bytes = (store.root / "site-a" / "entry.json").read_bytes()
    assert store.install_folder(folder)[1] is False
    assert (store.root / "site-a" / "entry.json").read_bytes() == entry_bytes
    card = json.loads((folder / "card.json").read_text())
    card["referral_threshold"] = 0.4
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="already holds a different model with id site-a"):
        store.install_folder(folder)


def test_a_card_that_does_not_say_trained_on_is_refused(tmp_path):
    folder = model_folder(tmp_path, "a", "site-a")
    for name in ("card.json", "model.manifest.json"):
        data = json.loads((folder / name).read_text())
        data.pop("trained_on")
        (folder / name).write_text(json.dumps(data))
    with pytest.raises(ModelError, match='add "trained_on": "real"'):
        ModelStore(tmp_path / "store").install_folder(folder)


def test_cli_lists_the_active_model(tmp_path, capsys):
    store = tmp_path / "store"
    assert model_main(["install", "--store", str(store), str(DEMO), "--activate"]) == 0
    assert model_main(["list", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    demo_id = json.loads((DEMO / "model.manifest.json").read_text())["model_id"]
    assert f"* {demo_id}  model.onnx fp32  trained_on=simulated" in out
    assert model_main(["remove", "--store", str(store), demo_id]) == 4
    assert "is the active model" in capsys.readouterr().err


# A child process that installs a model and SIGKILLs itself after the first file is copied:
# exactly what a power cut or `kill -9` in the middle of an install does.
KILLED_INSTALL = """
import os, shutil, signal, sys
real = shutil.copyfile
def copy_then_die(src, dst, *a, **k):
    real(src, dst, *a, **k)
    os.kill(os.getpid(), signal.SIGKILL)
shutil.copyfile = copy_then_die
from edge.model_store.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_during_install_keeps_the_old_model_active_and_loadable(tmp_path):
    store = ModelStore(tmp_path / "store")
    store.install_folder(model_folder(tmp_path, "a", "site-a"))
    store.activate("site-a")
    before = (store.root / "active.json").read_bytes()
    newer = model_folder(tmp_path, "b", "site-b")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_INSTALL,
            "install",
            "--store",
            str(store.root),
            str(newer),
            "--activate",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr
    assert (store.root / "active.json").read_bytes() == before
    assert [e.model_id for e in store.entries()] == ["site-a"]  # the half copy is not a model
    active = store.active()
    assert active is not None and active.model_id == "site-a"

    import numpy as np

    from edge.runners.registry import create_runner
    from gaitcontract.spec import INPUT_NAME

    with create_runner("onnxruntime", active.path) as runner:
        assert runner.model_id == "site-a"
        runner.infer({INPUT_NAME: np.zeros(runner.input_shape, np.float32)})
    # the next change clears what the killed one left
    store.install_folder(newer)
    assert not any((store.root / ".incoming").iterdir())


# -- the release gate ------------------------------------------------------------------------


def _checkset(folder: Path, walks: int = 40) -> None:
    from export.bundle import write_reference_checkset
    from export.walks import simulated_walks
    from gaitcontract.checkset import CHECKSET_NAME
    from gaitcontract.manifest import read_manifest

    # walks at the shipped demo's own height (64x44 or 128x88), as `export bundle` makes them
    _, frames, height, _ = read_manifest(DEMO / "model.manifest.json").input_shapes["silhouettes"]
    silhouettes, _ = simulated_walks(walks, frames, seed=123, height=height)
    write_reference_checkset(folder / CHECKSET_NAME, silhouettes, DEMO / "model.onnx")


def _damaged_int8(folder: Path, model_id: str) -> None:
    """The demo's CPU INT8 form with its int8 weights scrambled, re-described by a fresh manifest."""
    import numpy as np

    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from gaitcontract.manifest import sha256_file

    model = onnx.load(str(DEMO / "model.int8-cpu.onnx"))
    rng = np.random.default_rng(0)
    scrambled = 0
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype == np.int8 and values.size > 16:
            init.CopyFrom(
                numpy_helper.from_array(
                    rng.permutation(values.ravel()).reshape(values.shape), init.name
                )
            )
            scrambled += 1
    assert scrambled, "the INT8 demo model has no int8 weights to damage"
    onnx.save(model, str(folder / "model.int8-cpu.onnx"))
    manifest = json.loads((DEMO / "model.int8-cpu.manifest.json").read_text())
    manifest.update(model_id=model_id, trained_on="real", weights_sha256=None)
    manifest["files"] = {"model.int8-cpu.onnx": sha256_file(folder / "model.int8-cpu.onnx")}
    (folder / "model.int8-cpu.manifest.json").write_text(json.dumps(manifest))


def test_the_gate_refuses_a_damaged_int8_model_and_the_previous_one_keeps_screening(
    tmp_path, capsys
):
    store = tmp_path / "store"
    good = model_folder(tmp_path, "good", "site-good")
    _checkset(good)
    assert model_main(["install", "--store", str(store), str(good), "--activate"]) == 0
    bad = model_folder(tmp_path, "bad", "site-bad")
    (bad / "model.onnx").unlink()
    (bad / "model.manifest.json").unlink()
    _damaged_int8(bad, "site-bad")
    shutil.copyfile(good / "checkset.npz", bad / "checkset.npz")
    code = model_main(["install", "--store", str(store), str(bad), "--activate"])
    err = capsys.readouterr().err
    assert code == 4 and "release gate refused site-bad model.int8-cpu.onnx" in err, err
    active = ModelStore(store).active()
    assert active is not None and active.model_id == "site-good"
    assert model_main(["list", "--store", str(store)]) == 0
    listing = capsys.readouterr().out
    assert "model.onnx: gate: passed agreement 1.000" in listing
    assert "model.int8-cpu.onnx: gate: REFUSED" in listing


def test_build_engine_builds_from_the_active_onnx_into_its_store_folder(tmp_path, monkeypatch):
    store = ModelStore(tmp_path / "store")
    store.install_folder(model_folder(tmp_path, "a", "site-a"))
    store.activate("site-a")
    seen: list[list[str]] = []

    def fake_run(command, check=False):  # noqa: ANN001, ANN202 - subprocess.run's shape
        seen.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert model_main(["build-engine", "--store", str(store.root), "--timing-cache", "/tc/"]) == 0
    folder = store.root / "site-a"
    assert seen[0][1:] == [
        "-m", "export", "engine", "--onnx", str(folder / "model.onnx"),
        "--out", str(folder / "model.engine"), "--reuse-if-current", "--timing-cache", "/tc/",
    ]  # fmt: skip


def test_an_engine_that_fails_its_gate_puts_the_previous_model_back_and_fails_the_unit(
    tmp_path, monkeypatch, capsys
):
    from edge.model_store import gate as gates

    store = ModelStore(tmp_path / "store")
    for model_id in ("site-a", "site-b"):
        store.install_folder(model_folder(tmp_path, model_id, model_id))
        store.activate(model_id)  # site-b is the new model, its engine not built yet
    built: list[str] = []

    def fake_run(command, check=False):  # noqa: ANN001, ANN202 - subprocess.run's shape
        built.append(command[command.index("--out") + 1])
        return subprocess.CompletedProcess(command, 0)

    def refuse(entry, file, runner, threads=None, model_path=None):  # noqa: ANN001, ANN202
        assert runner == "tensorrt" and model_path == entry.folder / "model.engine"
        return {"passed": False, "walks": 200, "agreement": 0.9, "reason": "agreement 0.900"}

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(gates, "run_gate", refuse)
    assert model_main(["build-engine", "--store", str(store.root)]) == 4
    assert "release gate refused the engine of site-b" in capsys.readouterr().err
    assert built == [str(store.root / m / "model.engine") for m in ("site-b", "site-a")]
    active = store.active()
    assert active is not None and active.model_id == "site-a"
    assert store.entry("site-b").gate["model.onnx@tensorrt"]["passed"] is False
    assert "site-a put back" in (store.refusal() or "")
    store.activate("site-b")  # an operator's choice clears it
    assert store.refusal() is None


# -- the streaming split (encoder + head) travels with the model and is gated with it ------

SPLIT_FILES = ("encoder.onnx", "head.onnx", "model.split.json")


def _with_split(folder: Path, model_id: str) -> list[str]:
    """The demo's split (every encoder form, the head, their manifests) under `model_id`."""
    split = json.loads((DEMO / "model.split.json").read_text())
    graphs = [*split["encoders"].values(), split["head"]]
    for name in graphs:
        shutil.copyfile(DEMO / name, folder / name)
        manifest = json.loads((DEMO / f"{Path(name).stem}.manifest.json").read_text())
        manifest["model_id"] = model_id
        (folder / f"{Path(name).stem}.manifest.json").write_text(json.dumps(manifest))
    split["model_id"] = model_id
    (folder / "model.split.json").write_text(json.dumps(split))
    return graphs


def _damaged_head(folder: Path) -> None:
    """head.onnx with its float weights scrambled, re-described by its manifests (a consistent
    but wrong head: only running it can tell)."""
    import numpy as np

    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from gaitcontract.manifest import sha256_file

    model = onnx.load(str(folder / "head.onnx"))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.size > 16:
            init.CopyFrom(
                numpy_helper.from_array(
                    rng.permutation(values.ravel()).reshape(values.shape), init.name
                )
            )
    onnx.save(model, str(folder / "head.onnx"))
    digest = sha256_file(folder / "head.onnx")
    split = json.loads((folder / "model.split.json").read_text())
    split["files"]["head.onnx"] = digest
    (folder / "model.split.json").write_text(json.dumps(split))
    manifest = json.loads((folder / "head.manifest.json").read_text())
    manifest["files"] = {"head.onnx": digest}
    (folder / "head.manifest.json").write_text(json.dumps(manifest))


def test_the_split_is_installed_gated_and_found_by_a_streaming_kiosk(tmp_path, capsys):
    from types import SimpleNamespace

    from edge.config import load_config
    from edge.runners.registry import create_runner
    from edge.screening.streaming import StreamingClassifier
    from edge.wiring import Components

    folder = model_folder(tmp_path, "a", "site-a")
    graphs = _with_split(folder, "site-a")
    _checkset(folder, walks=20)
    store = tmp_path / "store"
    assert model_main(["install", "--store", str(store), str(folder), "--activate"]) == 0
    entry = ModelStore(store).entry("site-a")
    for name in [*graphs, "model.split.json"]:
        assert (entry.folder / name).read_bytes() == (folder / name).read_bytes(), name
        manifest = f"{Path(name).stem}.manifest.json"
        assert name.endswith(".json") or (entry.folder / manifest).is_file(), manifest
    # encoder and head are not whole-walk forms: they cannot be activated on their own
    assert set(entry.forms) == {"model.onnx"}
    with pytest.raises(ModelError, match="no ONNX form 'head.onnx'"):
        ModelStore(store).activate("site-a", "head.onnx")
    figures = entry.gate["model.onnx"]
    assert figures["passed"] and figures["split"]["passed"], figures
    assert figures["split"]["walks"] == 20 and figures["split"]["head"] == "head.onnx"
    assert figures["split"]["max_abs_dprob"] < 1e-3  # the split is the same computation
    capsys.readouterr()
    assert model_main(["list", "--store", str(store)]) == 0
    assert "split encoder.onnx+head.onnx: agreement 1.000" in capsys.readouterr().out
    # a kiosk with model.store and model.inference = "streaming" finds them beside the model
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[model]\nstore = "{store}"\ninference = "streaming"\n'
    )
    cfg = load_config(config, env={})
    assert cfg.model.path == entry.folder / "model.onnx" and cfg.model.inference == "streaming"
    parts = Components(
        source=None,
        segmenter=None,
        assembler=SimpleNamespace(on_silhouette=None),
        runner=create_runner(cfg.model.runner, cfg.model.path),
        make_publisher=lambda identity: None,
        threshold=0.5,
        inference=cfg.model.inference,
    )
    parts.activate_runner("site", "kiosk", warmup=False)  # what the kiosk does at start-up
    try:
        assert isinstance(parts.classifier, StreamingClassifier)
        assert parts.classifier.sessions.folder == entry.folder
        assert parts.classifier.sessions.model_id == "site-a"
        assert parts.assembler.on_silhouette == parts.classifier.submit
    finally:
        parts.deactivate_runner()


def test_a_folder_whose_split_is_another_model_is_refused(tmp_path):
    folder = model_folder(tmp_path, "a", "site-a")
    _with_split(folder, "site-other")
    with pytest.raises(ModelError, match="different model ids"):
        ModelStore(tmp_path / "store").install_folder(folder)


def test_the_gate_refuses_a_damaged_head_and_the_previous_model_keeps_screening(tmp_path, capsys):
    store = tmp_path / "store"
    good = model_folder(tmp_path, "good", "site-good")
    _with_split(good, "site-good")
    _checkset(good, walks=20)
    assert model_main(["install", "--store", str(store), str(good), "--activate"]) == 0
    bad = model_folder(tmp_path, "bad", "site-bad")
    _with_split(bad, "site-bad")
    _damaged_head(bad)
    shutil.copyfile(good / "checkset.npz", bad / "checkset.npz")
    capsys.readouterr()
    code = model_main(["install", "--store", str(store), str(bad), "--activate"])
    err = capsys.readouterr().err
    assert code == 4 and "release gate refused site-bad model.onnx: streaming split" in err, err
    active = ModelStore(store).active()
    assert active is not None and active.model_id == "site-good"
    figures = ModelStore(store).entry("site-bad").gate["model.onnx"]
    assert figures["agreement"] == 1.0  # the whole-walk form is sound: the head alone is refused
    assert not figures["split"]["passed"] and figures["split"]["max_abs_dprob"] > 0.05


def test_the_gate_refuses_a_head_that_does_not_match_its_split_manifest(tmp_path):
    from edge.model_store.gate import run_gate

    store = ModelStore(tmp_path / "store")
    folder = model_folder(tmp_path, "a", "site-a")
    _with_split(folder, "site-a")
    _checkset(folder, walks=4)
    entry, _ = store.install_folder(folder)
    head = bytearray((entry.folder / "head.onnx").read_bytes())
    head[-100] ^= 0x01  # one bit, after installation
    (entry.folder / "head.onnx").write_bytes(bytes(head))
    figures = run_gate(entry, "model.onnx")
    assert not figures["passed"] and "is missing or does not match" in figures["reason"]
    with pytest.raises(ModelError, match="streaming split: cannot load it"):
        store.activate("site-a", gate=lambda e, f: run_gate(e, f))
