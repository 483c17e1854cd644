"""Health metrics of the running kiosk, published on the `health` topic.

Counters are bumped from the capture, pipeline and inference threads, so
every update takes one small lock; `snapshot()` returns a plain dict that the
publisher serialises. Latency percentiles come from a bounded window of the
most recent walks, so a kiosk that runs for months keeps constant memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping

import numpy as np

from edge.settings import HealthConfig

HEALTH_SCHEMA = "gaitmil.health/1"


def percentiles(
    values: Iterable[float], qs: Iterable[int] = (50, 95, 99)
) -> dict[str, float | None]:
    """{"p50": .., "p95": .., "p99": ..} of `values` (None when there are none)."""
    data = np.asarray(list(values), dtype=np.float64)
    out: dict[str, float | None] = {}
    for q in qs:
        out[f"p{q}"] = round(float(np.percentile(data, q)), 3) if data.size else None
    return out


class Health:
    """Thread-safe counters, latency windows and alarms of one kiosk run."""

    def __init__(self, latency_window: int | None = None) -> None:
        """`latency_window`: health.latency_window (unset: its default in edge.settings)."""
        self.latency_window = (
            latency_window if latency_window is not None else HealthConfig().latency_window
        )
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._counters: dict[str, int] = {
            "frames_seen": 0,
            "frames_dropped": 0,  # capture queue full
            "frames_bad": 0,  # rejected by validation (zeros, NaN, wrong shape)
            "walks": 0,
            "referrals": 0,
            "no_referrals": 0,
            "retakes": 0,
            "rescreens": 0,
            "inference_errors": 0,
            "results_refused": 0,  # the outbox could not store a result (alarm raised)
            "fragments_dropped": 0,  # tracks too short or only at the border: no result (edge.walks.assembler)
        }
        self._retake_reasons: dict[str, int] = {}
        self._latency: dict[str, deque[float]] = {}
        self._alarms: dict[str, str] = {}
        self._gauges: dict[str, object] = {"camera_timeouts": 0, "outbox_depth": 0}

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counters.get(name, 0)

    def record_outcome(self, outcome: str, reason: str | None = None) -> None:
        """Count one published result by outcome (and retake reason)."""
        with self._lock:
            self._counters["walks"] += 1
            if outcome == "retake":
                self._counters["retakes"] += 1
                key = reason or "unknown"
                self._retake_reasons[key] = self._retake_reasons.get(key, 0) + 1
            elif (
                outcome == "rescreen"
            ):  # in the card's band: walked again, neither referral nor not
                self._counters["rescreens"] += 1
            elif outcome == "refer_for_clinical_exam":
                self._counters["referrals"] += 1
            else:
                self._counters["no_referrals"] += 1

    def record_latency(self, stage: str, ms: float) -> None:
        with self._lock:
            window = self._latency.get(stage)
            if window is None:
                window = self._latency[stage] = deque(maxlen=self.latency_window)
            window.append(float(ms))

    def latencies(self, stage: str) -> list[float]:
        with self._lock:
            return list(self._latency.get(stage, ()))

    def set_gauge(self, name: str, value: object) -> None:
        with self._lock:
            self._gauges[name] = value

    def raise_alarm(self, name: str, message: str) -> None:
        with self._lock:
            self._alarms[name] = message

    def clear_alarm(self, name: str) -> None:
        with self._lock:
            self._alarms.pop(name, None)

    @property
    def alarms(self) -> dict[str, str]:
        with self._lock:
            return dict(self._alarms)

    def snapshot(self, extra: Mapping[str, object] | None = None) -> dict:
        """A JSON-ready dict of everything above (no pixels, no identities)."""
        with self._lock:
            latency = {stage: percentiles(window) for stage, window in self._latency.items()}
            out = {
                "schema": HEALTH_SCHEMA,
                "uptime_s": round(time.monotonic() - self._started, 1),
                **self._counters,
                "retake_reasons": dict(self._retake_reasons),
                "latency_ms": latency,
                "alarms": dict(self._alarms),
                **self._gauges,
            }
        if extra:
            out.update(extra)
        return out


class RateLimitedLog:
    """Log a repeated per-frame (or per-message) line at most once per interval, with the count.

    Lines held back are counted per key; the next line of that key says how many, and
    `summarise()` (at shutdown) logs the counts no later line reported.
    """

    def __init__(self, logger, interval_s: float = 10.0) -> None:  # noqa: ANN001 - logging.Logger
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def info(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.INFO, key, message, *args)

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Log at `level` unless a line of `key` went out within the interval; True when logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            suppressed = self._suppressed.pop(key, 0)
            self._last[key] = now
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        self.logger.log(level, message, *args)
        return True

    def summarise(self) -> int:
        """Log, once per key, how many lines were held back and not yet reported; returns the total."""
        with self._lock:
            pending = dict(self._suppressed)
            self._suppressed.clear()
        for key, count in pending.items():
            self.logger.info("%d further %r line(s) were suppressed by the rate limit", count, key)
        return sum(pending.values())
