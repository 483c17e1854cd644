"""Health counters, latency percentiles, alarms and the rate-limited per-frame log."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from edge.health import Health, RateLimitedLog, percentiles


def test_percentiles_match_numpy_and_handle_empty():
    values = np.random.default_rng(1).random(101) * 100
    got = percentiles(values)
    assert got["p50"] == pytest.approx(np.percentile(values, 50), abs=1e-3)
    assert got["p95"] == pytest.approx(np.percentile(values, 95), abs=1e-3)
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_outcomes_retake_reasons_and_alarms():
    health = Health()
    health.record_outcome("refer_for_clinical_exam")
    health.record_outcome("no_referral_indicated")
    health.record_outcome("retake", "too_short")
    health.record_outcome("retake", "too_short")
    health.record_outcome("rescreen")  # neither a referral nor a no-referral
    health.raise_alarm("outbox_near_full", "81 %")
    snap = health.snapshot({"outbox_depth": 7})
    assert (snap["walks"], snap["referrals"], snap["no_referrals"], snap["retakes"]) == (5, 1, 1, 2)
    assert snap["rescreens"] == 1
    assert snap["retake_reasons"] == {"too_short": 2}
    assert snap["alarms"] == {"outbox_near_full": "81 %"}
    assert snap["outbox_depth"] == 7
    health.clear_alarm("outbox_near_full")
    assert health.alarms == {}


def test_latency_window_is_bounded():
    health = Health(latency_window=10)
    for ms in range(100):
        health.record_latency("inference", float(ms))
    assert health.latencies("inference") == [float(v) for v in range(90, 100)]
    assert health.snapshot()["latency_ms"]["inference"]["p50"] == pytest.approx(94.5)


def test_counters_are_thread_safe():
    health = Health()

    def bump():
        for _ in range(2000):
            health.count("frames_seen")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert health.get("frames_seen") == 8000


def test_rate_limited_log_suppresses_and_counts(caplog):
    limited = RateLimitedLog(logging.getLogger("test.rate"), interval_s=60.0)
    with caplog.at_level(logging.WARNING):
        assert limited.warning("nan", "bad frame %d", 1)
        assert not limited.warning("nan", "bad frame %d", 2)
        assert not limited.warning("nan", "bad frame %d", 3)
        assert limited.warning("zeros", "other problem")
    assert [r.getMessage() for r in caplog.records] == ["bad frame 1", "other problem"]
    limited.interval_s = 0.0
    with caplog.at_level(logging.WARNING):
        limited.warning("nan", "bad frame %d", 4)
    assert "2 similar messages suppressed" in caplog.records[-1].getMessage()
