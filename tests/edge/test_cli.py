"""`python -m edge`: exit codes, readable errors, and each command doing its job."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edge.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_MODEL, EXIT_OK, EXIT_SOURCE, main
from tests.conftest import free_port
from tests.edge.kiosk_support import (
    Corridor,
    kiosk_config,
    run_kiosk,
)

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n' + text)
    return path


def test_config_check_prints_the_effective_config_with_secrets_masked(tmp_path, capsys):
    secret = tmp_path / "mqtt.password"
    secret.write_text("hunter2\n")
    path = _config(tmp_path, f'[mqtt]\nusername = "kiosk-7"\npassword_file = "{secret}"\n')
    assert main(["config", "check", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["mqtt"]["username"] != "kiosk-7" and "***" in data["mqtt"]["username"]
    assert "hunter2" not in out
    # no threshold in the file: the shipped demo model's card decides
    card = json.loads((REPO / "models" / "demo" / "card.json").read_text())
    assert data["screening"]["threshold_source"].startswith("model card")
    assert data["screening"]["threshold"] == pytest.approx(card["referral_threshold"])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[walk]\nmin_frames = -3\n", "walk.min_frames"),
        ('[mqtt]\npassword = "inline"\n', "password_file"),
        ('[modle]\npath = "x"\n', "modle"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_config_exits_3_naming_the_key(tmp_path, capsys, text, needle):
    path = _config(tmp_path, text)
    assert main(["config", "check", str(path)]) == EXIT_CONFIG
    assert needle in capsys.readouterr().err
    assert main(["run", "--config", str(path)]) == EXIT_CONFIG


def test_corrupt_model_exits_4(tmp_path, capsys, mosquitto):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07not an onnx model" * 10)
    code = main(
        [
            "run",
            "--config",
            str(_config(tmp_path)),
            "--model",
            str(model),
            "--broker",
            mosquitto.url,
            "--source",
            "sim://?walks=1",
        ]
    )
    assert code == EXIT_MODEL
    err = capsys.readouterr().err
    assert str(model) in err


def test_mismatched_manifest_exits_4(tmp_path, capsys, mosquitto, kiosk_model):
    folder = tmp_path / "model"
    shutil.copytree(kiosk_model.parent, folder)
    manifest = folder / "model.manifest.json"
    data = json.loads(manifest.read_text())
    data["files"]["model.onnx"] = "0" * 64  # the manifest describes another file
    manifest.write_text(json.dumps(data))
    code = main(
        [
            "run",
            "--config",
            str(_config(tmp_path)),
            "--model",
            str(folder / "model.onnx"),
            "--broker",
            mosquitto.url,
            "--source",
            "sim://?walks=1",
        ]
    )
    assert code == EXIT_MODEL
    assert "manifest" in capsys.readouterr().err.lower()


def test_missing_model_and_unknown_source_exit_codes(tmp_path, capsys, mosquitto, kiosk_model):
    config = str(_config(tmp_path))
    assert (
        main(
            [
                "run",
                "--config",
                config,
                "--model",
                str(tmp_path / "nope.onnx"),
                "--broker",
                mosquitto.url,
                "--source",
                "sim://?walks=1",
            ]
        )
        == EXIT_MODEL
    )
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--config",
                config,
                "--model",
                str(kiosk_model),
                "--broker",
                mosquitto.url,
                "--source",
                "ftp://camera",
            ]
        )
        == EXIT_SOURCE
    )
    assert "unknown source scheme" in capsys.readouterr().err


def test_run_from_flags_alone(tmp_path, mosquitto, kiosk_model, monkeypatch):
    # without a config the outbox goes to the per-user XDG state folder, never ./state
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    code = main(
        [
            "run",
            "--model",
            str(kiosk_model),
            "--broker",
            mosquitto.url,
            "--source",
            "sim://?seed=1&walks=1",
            "--max-walks",
            "1",
        ]
    )
    assert code == EXIT_OK
    assert (tmp_path / "xdg" / "gaitmil-edge" / "outbox.sqlite3").exists()
    assert not (tmp_path / "state").exists()


def test_calibrate_site_learns_the_empty_corridor(tmp_path, capsys):
    from edge.segmentation.site import SiteModel

    out = tmp_path / "site.npz"
    assert (
        main(
            [
                "calibrate-site",
                "--source",
                "sim://?seed=0&walks=0&gap_s=2",
                "--seconds",
                "1",
                "--out",
                str(out),
            ]
        )
        == EXIT_OK
    )
    site = SiteModel.load(out)
    assert site.frames == 30
    assert site.valid_share > 0.5
    assert np.count_nonzero(site.background_mm) > 0
    assert "site_model" in capsys.readouterr().out


def test_check_reports_each_part(tmp_path, capsys, mosquitto, kiosk_model):
    config = str(_config(tmp_path))
    args = ["check", "--config", config, "--model", str(kiosk_model), "--source", "sim://?walks=1"]
    assert main([*args, "--broker", mosquitto.url]) == EXIT_OK
    out = capsys.readouterr().out
    assert [line.split()[0:2] for line in out.splitlines()] == [
        ["camera", "OK"],
        ["model", "OK"],
        ["broker", "OK"],
        ["outbox", "OK"],
    ]
    dead = f"mqtt://127.0.0.1:{free_port()}"
    assert main([*args, "--broker", dead, "--timeout", "2"]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "broker  FAIL" in out and "fix:" in out


def test_subscribe_records_results(tmp_path, mosquitto, kiosk_model):
    out = tmp_path / "results.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge",
            "subscribe",
            "--broker",
            mosquitto.url,
            "--site",
            "test-site",
            "--out",
            str(out),
            "--count",
            "2",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = threading.Event()
        lines: list[str] = []

        def read_err():
            for line in proc.stderr:
                lines.append(line)
                if "listening on" in line:
                    ready.set()

        threading.Thread(target=read_err, daemon=True).start()
        assert ready.wait(30), lines
        assert (
            run_kiosk(
                kiosk_config(tmp_path, mosquitto.url, kiosk_model), source=Corridor(walks=2)
            ).results
            == 2
        )
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2
    assert len(stdout.strip().splitlines()) == 2  # one readable line per result
    assert all("test-site/test-kiosk" in line for line in stdout.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_demo_prints_results_and_summary(tmp_path, mosquitto, kiosk_model, broker):
    args = [sys.executable, "-m", "edge", "demo", "--walks", "2", "--model", str(kiosk_model)]
    if broker == "mosquitto":
        args += ["--broker", mosquitto.url]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "pipeline" in out and "not a screening tool" in out
    assert "walks 2:" in out and "received by the dashboard: 2" in out
    assert "demo-school/demo-kiosk" in out
    assert "inference: p50" in out


def test_demo_model_is_the_kiosk_default_fp32_form(tmp_path, monkeypatch):
    import edge.demo as demo
    from edge.errors import ModelError

    folder = tmp_path / "models" / "demo"
    folder.mkdir(parents=True)
    monkeypatch.setattr(demo, "demo_model_dirs", lambda: [folder])
    (folder / "model.int8-cpu.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match="make demo-model"):
        demo.find_demo_model()
    (folder / "model.onnx").write_bytes(b"x")
    assert demo.find_demo_model() == folder / "model.onnx"
    with pytest.raises(ModelError, match="not found"):
        demo.find_demo_model(str(tmp_path / "missing.onnx"))


def test_collect_is_reached_through_the_edge_command(tmp_path):
    from edge.cli import main

    out = tmp_path / "data"
    assert main(["collect", "--source", "sim://?seed=1&walks=1", "--out", str(out)]) == 0
    assert (out / "truth.json").is_file()
    with pytest.raises(SystemExit) as exc:  # other commands still refuse flags they do not know
        main(["run", "--no-such-flag"])
    assert exc.value.code == 2
