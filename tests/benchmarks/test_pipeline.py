"""The kiosk-pipeline benchmark: the real kiosk loop on the simulated camera against mosquitto."""

from __future__ import annotations

import json

import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.latency import main
from benchmarks.localbroker import require_loopback
from benchmarks.report import validate
from benchmarks.stats import is_ordered


@pytest.mark.slow
def test_pipeline_fast_and_realtime_against_mosquitto(tiny_models, mosquitto, tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    config = tmp_path / "kiosk.toml"
    # the kiosk's own settings; source/model/broker are the benchmark's (the tiny test model has no manifest)
    config.write_text("[outbox]\ndisk_budget_mb = 64\n[model]\nrequire_manifest = false\n")
    code = main(
        [
            "--pipeline",
            "--config",
            str(config),
            "--backend",
            f"onnxruntime:{tiny_models.onnx}",
            "--broker",
            mosquitto.url,
            "--sim-walks",
            "1",
            "--modes",
            "fast,realtime",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "p.png"),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    validate(report, "pipeline")
    assert report["settings"]["config"] == str(config)
    assert [m["mode"] for m in report["modes"]] == ["fast", "realtime"]
    for mode in report["modes"]:
        assert mode["results"] == 1 and mode["acknowledged"] == 1, mode
        assert mode["frames_seen"] > 30 and mode["frames_bad"] == 0
        assert mode["cpu_s"] > 0 and mode["peak_rss_mib"] > 0
        for stage in ("segmentation", "walk_assembly"):
            # every frame the camera delivered was segmented, except those dropped when the queue was full
            assert mode["stages_ms"][stage]["count"] == mode["frames_seen"] - mode["frames_dropped"]
        for name, summary in mode["stages_ms"].items():
            assert summary["min"] >= 0 and is_ordered(summary), (mode["mode"], name)
        ack = mode["walk_end_to_ack_ms"]
        assert ack["count"] == 1 and ack["min"] > 0
        # the broker acknowledges after the result exists, and the result after inference
        assert (
            ack["min"]
            >= mode["stages_ms"]["walk_to_outbox"]["min"]
            >= mode["stages_ms"]["inference"]["min"]
        )
    fast, realtime = report["modes"]
    assert "source" in fast["stages_ms"] and "source" not in realtime["stages_ms"]
    assert (
        realtime["frames_per_s"] < 35
    )  # paced like a 30 fps camera (frames late after warm-up catch up)
    assert fast["frames_dropped"] == 0  # unpaced sources wait for the kiosk instead of dropping
    assert "walk end to broker ack" in capsys.readouterr().out


def test_non_loopback_brokers_are_refused():
    assert require_loopback("mqtt://127.0.0.1:1883") == ("127.0.0.1", 1883)
    assert require_loopback("mqtt://localhost:1884")[1] == 1884
    with pytest.raises(BenchmarkError, match="not a loopback address"):
        require_loopback("mqtt://192.0.2.10:1883")
    with pytest.raises(BenchmarkError, match="not TLS"):
        require_loopback("mqtts://127.0.0.1:8883")
    with pytest.raises(BenchmarkError, match="mqtt://"):
        require_loopback("http://127.0.0.1:1883")


def test_pipeline_needs_exactly_one_backend(tiny_models, capsys):
    code = main(
        [
            "--pipeline",
            "--backend",
            f"onnxruntime:{tiny_models.onnx}",
            "--backend",
            f"torch:{tiny_models.checkpoint}",
        ]
    )
    assert code == 2
    assert "one --backend" in capsys.readouterr().err


def test_the_pipeline_refuses_the_production_prefix_before_it_starts(tiny_models, capsys):
    args = ["--pipeline", "--backend", f"onnxruntime:{tiny_models.onnx}", "--modes", "fast"]
    assert main([*args, "--topic-prefix", "gaitmil/v1"]) == 2
    err = capsys.readouterr().err
    assert "'gaitmil/v1' is where real kiosks publish" in err and "--allow-production-prefix" in err


@pytest.mark.slow
def test_the_pipeline_publishes_under_the_test_prefix(tiny_models, mosquitto, tmp_path):
    from tests.edge.test_faults_test_topics import Everything

    config = tmp_path / "kiosk.toml"
    # a kiosk config naming the production prefix: the benchmark still publishes under its own
    config.write_text('[model]\nrequire_manifest = false\n[mqtt]\ntopic_prefix = "gaitmil/v1"\n')
    seen = Everything(mosquitto)
    try:
        code = main(
            [
                "--pipeline",
                "--config",
                str(config),
                "--backend",
                f"onnxruntime:{tiny_models.onnx}",
                "--broker",
                mosquitto.url,
                "--sim-walks",
                "1",
                "--modes",
                "fast",
            ]
        )
        assert code == 0
    finally:
        seen.close()
    assert any(t.endswith("/result") for t in seen.topics), seen.topics
    assert all(t.startswith("gaitmil-test/v1/bench/") for t in seen.topics), seen.topics
