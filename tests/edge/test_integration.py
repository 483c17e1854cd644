"""End-to-end: the simulator's corridor through the kiosk to a subscriber, and durability across SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.screening.result import validate_result
from tests.edge.kiosk_support import (
    GAP_FRAMES,
    WALK_FRAMES,
    kiosk_config,
    run_kiosk,
    subscriber_for,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (None, {"refer_for_clinical_exam", "no_referral_indicated"}),
        ("two_people", {"multiple_people"}),
        ("too_short", {"too_short"}),
        ("partial_exit", {"partial_view"}),
    ],
)
def test_simulated_walks_give_one_result_each(tmp_path, mosquitto, kiosk_model, scenario, expected):
    uri = "sim://?seed=3&walks=1" + (f"&scenario={scenario}" if scenario else "")
    cfg = kiosk_config(
        tmp_path,
        mosquitto.url,
        kiosk_model,
        **{"source.uri": uri, "walk.min_frames": 30, "segmentation.min_area": 1500},
    )
    sub = subscriber_for(mosquitto)
    try:
        kiosk = run_kiosk(cfg)
        assert sub.wait_for(kiosk.results, timeout=10)
    finally:
        sub.stop()
    assert kiosk.exit_code == 0
    assert kiosk.results == 1, [(r["outcome"], r["retake_reason"]) for r in sub.results]
    result = sub.results[0]
    validate_result(result)
    got = result["retake_reason"] if scenario else result["outcome"]
    assert got in expected, (
        result["outcome"],
        result["retake_reason"],
        json.dumps(result["quality"]),
    )


def _pending_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # table not created yet


def _kiosk_process(spec: dict) -> subprocess.Popen:
    code = (
        "import sys; from tests.edge.kiosk_support import corridor_process_main as m; "
        f"sys.exit(m({json.dumps(spec)!r}))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_results_in_the_outbox_survive_sigkill(tmp_path, mosquitto, kiosk_model):
    state = tmp_path / "state"
    config = {
        "model.path": str(kiosk_model),
        "mqtt.url": mosquitto.url,
        "state_dir": str(state),
        "kiosk.site_id": "test-site",
        "kiosk.kiosk_id": "test-kiosk",
        "segmentation.min_area": 600,
        "walk.min_frames": 20,
        "outbox.flush_seconds": 10.0,
    }
    mosquitto.stop()  # the broker is down: results can only wait in the outbox
    # 3 walks, then the camera hangs, so the process is alive when it is killed
    stall_after = GAP_FRAMES + 3 * (WALK_FRAMES + GAP_FRAMES)
    first = _kiosk_process({"config": config, "corridor": {"walks": 3, "stall_after": stall_after}})
    try:
        deadline = time.monotonic() + 60
        while _pending_rows(state / "outbox.sqlite3") < 3 and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()[0].decode()
            time.sleep(0.2)
        assert _pending_rows(state / "outbox.sqlite3") == 3
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    mosquitto.start()
    sub = subscriber_for(mosquitto)
    try:
        # a restarted kiosk (no new walks) drains what the killed one left behind
        second = _kiosk_process({"config": config, "corridor": {"walks": 0}})
        output = second.communicate(timeout=60)[0].decode()
        assert second.returncode == 0, output
        assert sub.wait_for(3, timeout=10), output
    finally:
        sub.stop()
    assert len({r["result_id"] for r in sub.results}) == 3
    assert _pending_rows(state / "outbox.sqlite3") == 0
