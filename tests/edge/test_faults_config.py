"""Hostile or mistaken settings and input files: refused with the key named, or counted and survived."""

from __future__ import annotations

import logging
import shutil

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.config import load_config, read_password
from edge.errors import ConfigError, ModelError
from edge.runners.registry import create_runner
from edge.service import Kiosk, ServiceOptions
from edge.wiring import runner_options
from tests.edge.kiosk_support import kiosk_config, run_kiosk


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("outbox.disk_budget_mb", float("inf"), "outbox.disk_budget_mb"),
        ("mqtt.topic_prefix", "a//b", "mqtt.topic_prefix"),
        ("mqtt.topic_prefix", "a/b\n", "mqtt.topic_prefix"),
        ("mqtt.qos", True, "mqtt.qos"),
    ],
)
def test_bad_values_are_refused_naming_the_key(key, value, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(None, {key: value}, env={})


@pytest.mark.parametrize("count", ["0", "-1"])
def test_max_walks_below_one_is_a_usage_error(count, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "--max-walks", count])
    assert stop.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_the_kiosk_refuses_max_walks_below_one():
    with pytest.raises(ConfigError, match="max_walks"):
        Kiosk(
            load_config(None, {}, env={}),
            options=ServiceOptions(max_walks=0, install_signals=False),
        )


def test_a_password_file_every_user_can_read_is_warned_about(tmp_path, caplog):
    password = tmp_path / "pw"
    password.write_text("secret\n")
    cfg = load_config(None, {"mqtt.username": "k", "mqtt.password_file": str(password)}, env={})
    password.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="edge.config"):
        assert read_password(cfg) == "secret"
    assert "every user" in caplog.text and "chmod 600" in caplog.text
    caplog.clear()
    password.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="edge.config"):
        read_password(cfg)
    assert caplog.text == ""


def test_a_model_without_a_manifest_is_refused_unless_allowed(tmp_path, kiosk_model, caplog):
    bare = tmp_path / "bare" / "model.onnx"
    bare.parent.mkdir()
    shutil.copy(kiosk_model, bare)
    cfg = load_config(None, {"model.path": str(bare)}, env={})
    with pytest.raises(ModelError, match="no manifest"):
        create_runner(cfg.model.runner, cfg.model.path, **runner_options(cfg)).activate()
    cfg = load_config(None, {"model.path": str(bare), "model.require_manifest": False}, env={})
    with caplog.at_level(logging.WARNING):
        runner = create_runner(cfg.model.runner, cfg.model.path, **runner_options(cfg))
    assert "require_manifest = false" in caplog.text
    runner.activate()
    runner.deactivate()


def test_an_unreadable_png_in_a_silhouette_folder_is_a_bad_frame(tmp_path, mosquitto, kiosk_model):
    folder = tmp_path / "walk"
    folder.mkdir()
    frame = np.zeros((64, 44), np.uint8)
    frame[10:60, 15:30] = 255
    for i in range(12):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    (folder / "005.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)  # damaged
    cfg = kiosk_config(
        tmp_path,
        mosquitto.url,
        kiosk_model,
        **{
            "source.uri": f"silhouettes://{folder}",
            "segmentation.method": "passthrough",
        },
    )
    kiosk = run_kiosk(cfg)
    assert kiosk.exit_code == 0  # the source ended; the camera did not "fail"
    snapshot = kiosk.health_snapshot()
    assert snapshot["frames_bad"] == 1 and snapshot["frames_seen"] == 11
