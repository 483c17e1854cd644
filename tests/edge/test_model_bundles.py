"""Signed bundles: made by `python -m export bundle`, verified by the kiosk before anything is unpacked."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edge.model_store import ModelStore
from edge.model_store.cli import main as model_main

pytest.importorskip("cryptography")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"


def export(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "export", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bundles")
    export("keygen", "--out", str(tmp / "district.key"))
    export("keygen", "--out", str(tmp / "intruder.key"))
    common = ["--model-dir", str(DEMO), "--check-walks", "30"]
    export(
        "bundle", *common, "--out", str(tmp / "signed.gmb"), "--sign-key", str(tmp / "district.key")
    )
    export("bundle", *common, "--out", str(tmp / "unsigned.gmb"))
    export(
        "bundle", *common, "--out", str(tmp / "wrong.gmb"), "--sign-key", str(tmp / "intruder.key")
    )
    tampered = bytearray((tmp / "signed.gmb").read_bytes())
    tampered[-5000] ^= 0x01  # one bit in the payload (inside an ONNX file)
    (tmp / "tampered.gmb").write_bytes(bytes(tampered))
    return {p.name: p for p in tmp.iterdir()}


def state(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*")) if store.exists() else []


@pytest.mark.parametrize(
    ("bundle", "reason"),
    [
        ("unsigned", "unsigned; refused"),
        ("tampered", "tampered or damaged"),
        ("wrong", "does not verify with any trusted key"),
    ],
)
def test_unsigned_tampered_and_wrongly_signed_bundles_are_refused_and_the_store_is_unchanged(
    tmp_path, bundles, bundle, reason, capsys
):
    store = tmp_path / "store"
    key = str(bundles["district.key.pub"])
    path = bundles[f"{bundle}.gmb"]
    before = state(store)
    code = model_main(["install", "--store", str(store), "--trusted-key", key, str(path)])
    err = capsys.readouterr().err
    assert code == 4 and f"bundle {path}" in err and reason in err, err
    assert state(store) == before


def test_a_signed_bundle_installs_passes_the_gate_and_names_its_signer(tmp_path, bundles, capsys):
    store = tmp_path / "store"
    key = str(bundles["district.key.pub"])
    assert (
        model_main(
            [
                "install",
                "--store",
                str(store),
                "--trusted-key",
                key,
                str(bundles["signed.gmb"]),
                "--activate",
            ]
        )
        == 0
    )
    active = ModelStore(store).active()
    assert active is not None and active.entry.signer is not None
    assert active.entry.signer.startswith("district.key:")
    assert (active.entry.folder / "checkset.npz").is_file()
    assert not list(active.entry.folder.glob("*.engine")) and not list(
        active.entry.folder.glob("*.pt")
    )
    assert active.entry.gate["model.onnx"]["passed"] is True
    # the streaming split travels in the bundle and is gated with the model (issue 27)
    split = json.loads((DEMO / "model.split.json").read_text())
    for name in [*split["encoders"].values(), split["head"]]:
        assert (active.entry.folder / name).read_bytes() == (DEMO / name).read_bytes(), name
        assert (active.entry.folder / f"{Path(name).stem}.manifest.json").is_file(), name
    assert (active.entry.folder / "model.split.json").is_file()
    assert set(active.entry.forms) == {
        "model.onnx",
        "model.fp16.onnx",
        "model.int8.onnx",
        "model.int8-cpu.onnx",
    }
    assert active.entry.gate["model.onnx"]["split"]["passed"] is True
    assert active.entry.gate["model.onnx"]["split"]["walks"] == 30
    capsys.readouterr()
    assert model_main(["list", "--store", str(store)]) == 0
    print(capsys.readouterr().out)


def test_allow_unsigned_accepts_an_unsigned_bundle_and_logs_it(tmp_path, bundles, caplog):
    caplog.set_level(logging.WARNING, logger="gaitcontract.bundle")
    store = tmp_path / "store"
    assert (
        model_main(
            ["install", "--store", str(store), "--allow-unsigned", str(bundles["unsigned.gmb"])]
        )
        == 0
    )
    assert "UNSIGNED, accepted because of --allow-unsigned" in caplog.text
    assert ModelStore(store).entries()[0].signer is None
