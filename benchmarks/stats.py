"""Summary statistics of latency samples, in trtexec's terms.

Percentile definition (documented because tools disagree): linear interpolation between the
closest ranks, i.e. for sorted samples x[0..n-1] the q-th percentile is at rank h = (n - 1) * q / 100,
value x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). This is numpy's default
(`numpy.percentile(..., method="linear")`, Hyndman & Fan type 7, Excel PERCENTILE.INC). The median is
the 50th percentile under the same rule. It never reports a value outside [min, max], and for few
samples it interpolates instead of snapping to a sample (trtexec picks a sample by nearest rank; with
more than a few hundred iterations the two agree to within one sample's spacing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from benchmarks.errors import BenchmarkError

# The order in which every report prints a distribution.
STAT_KEYS: tuple[str, ...] = ("min", "mean", "median", "p90", "p95", "p99", "max")
PERCENTILES: dict[str, float] = {"median": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted samples by linear interpolation between ranks."""
    n = len(sorted_samples)
    if n == 0:
        raise BenchmarkError(
            "cannot take a percentile of no samples: run at least one iteration (--iters >= 1)"
        )
    if not 0.0 <= q <= 100.0:
        raise BenchmarkError(f"percentile q={q} is out of range: use a value from 0 to 100")
    rank = (n - 1) * q / 100.0
    lower = math.floor(rank)
    upper = min(lower + 1, n - 1)
    fraction = rank - lower
    return float(sorted_samples[lower] + fraction * (sorted_samples[upper] - sorted_samples[lower]))


def summarize(samples: Iterable[float]) -> dict[str, float]:
    """min, mean, median, p90, p95, p99, max, std and count of a list of samples (e.g. milliseconds)."""
    values = np.asarray(list(samples), dtype=np.float64)
    if values.size == 0:
        raise BenchmarkError("no samples to summarize: run at least one iteration (--iters >= 1)")
    if not np.isfinite(values).all():
        raise BenchmarkError("latency samples must be finite; a timer returned NaN or infinity")
    ordered = np.sort(values)
    out: dict[str, float] = {
        "min": float(ordered[0]),
        "mean": float(ordered.mean()),
        "max": float(ordered[-1]),
        # population standard deviation (ddof=0), as trtexec prints it
        "std": float(ordered.std()),
        "count": int(ordered.size),
    }
    for key, q in PERCENTILES.items():
        out[key] = percentile(ordered, q)
    return {k: out[k] for k in (*STAT_KEYS, "std", "count")}


def is_ordered(summary: dict[str, float]) -> bool:
    """True when min <= median <= p90 <= p95 <= p99 <= max and min <= mean <= max (a sanity check)."""
    chain = [summary[k] for k in ("min", "median", "p90", "p95", "p99", "max")]
    return (
        all(a <= b for a, b in zip(chain, chain[1:]))
        and summary["min"] <= summary["mean"] <= summary["max"]
    )


def throughput_per_s(count: int, total_seconds: float) -> float:
    """Items per second: `count` items whose end-to-end times add up to `total_seconds`."""
    if total_seconds <= 0.0:
        raise BenchmarkError(
            f"cannot compute a throughput over {total_seconds} s: need a positive total time"
        )
    return count / total_seconds
