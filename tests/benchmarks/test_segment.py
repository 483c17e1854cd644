"""benchmarks.segment on a tiny input: the printed summary and the JSON fields, not the speed."""

from __future__ import annotations

import json

import pytest

from benchmarks.segment import main

STATS = {"mean", "p50", "p95", "max"}


def test_one_short_walk_reports_every_field(tmp_path, capsys):
    out = tmp_path / "segment.json"
    assert main(["--walks", "1", "--repeats", "2", "--gap-s", "0.2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["benchmark"] == "segment" and report["resolution"] == [640, 480]
    assert report["threads"] == 1 and report["repeats"] == 2 and report["simulated_walks"] == 1
    assert report["frames"] > 0
    # the simulated walk passes the gate on every repeat
    assert report["walks_accepted"] == 2 and report["walks_rejected"] == 0
    for key in ("per_frame_best_ms", "all_runs_ms"):
        stats = report[key]
        assert set(stats) == STATS
        assert 0 < stats["p50"] <= stats["p95"] <= stats["max"]
    # the best of the repeats is never slower than the runs it was taken from
    assert report["per_frame_best_ms"]["mean"] <= report["all_runs_ms"]["mean"]
    assert report["target_ms"] == 2.0
    assert report["within_target"] == (report["per_frame_best_ms"]["mean"] <= 2.0)
    assert f"{report['frames']} frames x 2" in printed and "per-frame best of 2" in printed
    assert "walks accepted 2 of 2" in printed


def test_counts_below_one_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--repeats", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
