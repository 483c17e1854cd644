"""Broker fan-in: several kiosks' own outboxes and publishers into one broker and one dashboard."""

from __future__ import annotations

import json

import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.fanin import FaninSettings, main, run_fanin
from benchmarks.report import validate
from benchmarks.stats import is_ordered


@pytest.mark.slow
def test_five_kiosks_two_seconds_against_mosquitto(mosquitto, tmp_path, capsys):
    out = tmp_path / "fanin.json"
    code = main(
        [
            "--kiosks",
            "5",
            "--rate",
            "2",
            "--seconds",
            "2",
            "--broker",
            mosquitto.url,
            "--kiosks-per-worker",
            "2",
            "--drain-seconds",
            "20",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "f.png"),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    validate(report, "fanin")
    assert report["sent"] == 5 * 4
    assert report["settings"]["workers"] == 3  # 2 + 2 + 1 kiosks
    assert report["delivered"] == report["sent"] and report["lost"] == 0
    assert report["invalid"] == 0 and report["foreign"] == 0 and report["outbox_left"] == 0
    latency = report["latency_ms"]
    assert latency["count"] == report["sent"] and latency["min"] > 0 and is_ordered(latency)
    assert report["delivered_per_s"] > 0
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert "lost" in capsys.readouterr().out


def test_embedded_broker_when_no_url_is_given():
    body = run_fanin(FaninSettings(kiosks=2, rate=2, seconds=1, drain_seconds=20), None)
    assert body["settings"]["protocol"] == "3.1.1" and body["settings"]["broker"].startswith(
        "embedded"
    )
    assert body["sent"] == 4 and body["lost"] == 0 and body["delivered"] == 4


def test_bounds_and_loopback_are_enforced(capsys):
    with pytest.raises(BenchmarkError, match="--kiosks"):
        FaninSettings(kiosks=0).check()
    with pytest.raises(BenchmarkError, match="more than 200000"):
        FaninSettings(kiosks=1000, rate=100, seconds=600).check()
    assert main(["--kiosks", "2", "--seconds", "1", "--broker", "mqtt://192.0.2.1:1883"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


@pytest.fixture
def postgres_server():
    from benchmarks.localpostgres import PostgresServer

    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_kiosks_into_two_central_ingest_workers_and_postgres(mosquitto, postgres_server, tmp_path):
    out = tmp_path / "fanin-central.json"
    code = main(
        [
            "--kiosks",
            "6",
            "--rate",
            "2",
            "--seconds",
            "3",
            "--broker",
            mosquitto.url,
            "--kiosks-per-worker",
            "3",
            "--central-workers",
            "2",
            "--database",
            postgres_server.create_database(),
            "--drain-seconds",
            "30",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    validate(report, "fanin")
    assert report["sent"] == 6 * 6 and report["delivered"] == report["sent"] and report["lost"] == 0
    central = report["central"]
    assert (
        central["workers"] == 2
        and central["duplicated_rows"] == 0
        and central["rows"] == report["sent"]
    )
    assert sum(central["per_worker_new"]) == report["sent"]
    assert report["latency_ms"]["count"] == report["sent"] and report["latency_ms"]["min"] > 0
