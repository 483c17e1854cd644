"""benchmarks.hostile_ingest at a tiny scale (real mosquitto, SQLite), and the bench prefix guard."""

from __future__ import annotations

import json

import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.hostile_ingest import main
from benchmarks.topics import BENCH_PREFIX, check_prefix


def test_tiny_hostile_ingest_stores_every_valid_and_quarantines_every_hostile(tmp_path, capsys):
    out = tmp_path / "hostile.json"
    assert main(["--valid", "16", "--hostile", "16", "--rate", "100", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["valid_stored"] == report["valid_sent"] == 16
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert report["quarantined"] == report["hostile_sent"] == 16
    assert report["quarantined_by_kind"] == report["expected_by_kind"]
    assert report["ingest_alive_after"] and report["latency_ms"]["p99"] is not None
    assert "valid stored      16 of 16" in capsys.readouterr().out


def test_benchmarks_refuse_the_production_prefix_unless_told():
    assert check_prefix(BENCH_PREFIX, False) == BENCH_PREFIX
    with pytest.raises(BenchmarkError, match="--allow-production-prefix"):
        check_prefix("gaitmil/v1", False)
    assert check_prefix("gaitmil/v1/", True) == "gaitmil/v1"
    assert main(["--topic-prefix", "gaitmil/v1", "--valid", "1", "--hostile", "0"]) == 2


def test_fanin_refuses_the_production_prefix_unless_told(capsys):
    from benchmarks.fanin import main as fanin_main

    assert fanin_main(["--topic-prefix", "gaitmil/v1", "--kiosks", "1", "--seconds", "1"]) == 2
    assert "--allow-production-prefix" in capsys.readouterr().err
