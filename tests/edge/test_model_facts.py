"""trained_on in status and health, and the service's refusal of a simulated-data model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_config
from edge.errors import ConfigError, ModelError
from edge.model_store import ModelStore
from edge.model_store.facts import refuse_simulated_model, status_facts, trained_on

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"


def config(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n{text}')
    return path


def test_a_service_with_the_demo_model_and_no_setting_refuses_to_start_naming_the_setting(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--service", "--config", str(config(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,  # the demo model is found from the package, not the working directory
    )
    assert done.returncode == 3, done.stderr
    assert "was trained on simulated walks" in done.stderr
    assert "screening.allow_simulated_model = true" in done.stderr


def test_the_setting_or_a_real_data_model_lets_the_service_start(tmp_path):
    allowed = load_config(config(tmp_path, "[screening]\nallow_simulated_model = true\n"), env={})
    refuse_simulated_model(allowed)  # no error
    store = ModelStore(tmp_path / "store")
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "model.onnx").write_bytes((DEMO / "model.onnx").read_bytes())
    card = json.loads((DEMO / "card.json").read_text())
    card.update(model_id="site-real", trained_on="real")
    (folder / "card.json").write_text(json.dumps(card))
    store.install_folder(folder)
    store.activate("site-real")
    cfg = load_config(config(tmp_path, f'[model]\nstore = "{store.root}"\n'), env={})
    assert cfg.model.path == store.root / "site-real" / "model.onnx"
    assert cfg.card_path == store.root / "site-real" / "card.json"
    refuse_simulated_model(cfg)
    facts = status_facts(cfg)
    assert facts["trained_on"] == "real" and facts["store_id"] == "site-real"
    assert facts["signer"] is None
    assert facts["walks_per_child"] == 1  # central's station reads it from the status


def test_a_model_that_does_not_say_is_refused_too(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"x")
    cfg = load_config(config(tmp_path, f'[model]\npath = "{folder / "model.onnx"}"\n'), env={})
    assert trained_on(cfg) is None
    with pytest.raises(ConfigError, match="does not say what it was trained on"):
        refuse_simulated_model(cfg)


def test_store_and_path_together_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="model.store and model.path are both set"):
        load_config(config(tmp_path, '[model]\nstore = "/s"\npath = "/m.onnx"\n'), env={})


def test_the_status_message_with_store_facts_matches_both_schemas(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    message = {
        "schema": "gaitmil.status/1",
        "state": "online",
        "site_id": "s",
        "kiosk_id": "k",
        "time": "2026-01-01T00:00:00Z",
        "model": {
            "id": "m",
            "sha256": "0" * 64,
            "runner": "onnxruntime",
            "precision": "fp32",
            "trained_on": "simulated",
            "store_id": "m",
            "signer": "district-2026",
            "gate": "passed",
            "activated_at": "2026-01-01T00:00:00+00:00",
        },
    }
    schema = REPO / "gaitcontract/schemas/status.schema.json"
    jsonschema.validate(message, json.loads(schema.read_text()))


def test_a_gate_refusal_since_the_activation_is_a_health_alarm(tmp_path):
    from edge.model_store.facts import gate_alarm
    from edge.service import Kiosk

    store = ModelStore(tmp_path / "store")
    for model_id in ("site-a", "site-b"):
        folder = tmp_path / model_id
        folder.mkdir()
        (folder / "model.onnx").write_bytes((DEMO / "model.onnx").read_bytes())
        card = json.loads((DEMO / "card.json").read_text())
        card.update(model_id=model_id, trained_on="real")
        (folder / "card.json").write_text(json.dumps(card))
        store.install_folder(folder)
    store.activate("site-a")
    with pytest.raises(ModelError, match="release gate refused site-b"):
        store.activate("site-b", gate=lambda entry, file: {"passed": False, "reason": "damaged"})
    cfg = load_config(config(tmp_path, f'[model]\nstore = "{store.root}"\n'), env={})
    assert cfg.active_model.model_id == "site-a"
    assert "release gate refused site-b model.onnx: damaged; site-a stays active" == gate_alarm(cfg)
    kiosk = Kiosk(cfg)
    assert "model_gate_refused" in kiosk.health.alarms
    snapshot = kiosk.health.snapshot()
    assert "site-a" in json.dumps(snapshot) and '"real"' in json.dumps(snapshot)
