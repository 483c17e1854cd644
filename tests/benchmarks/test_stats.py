"""Statistics on known samples: hand-worked percentiles and numpy's definition."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.stats import STAT_KEYS, is_ordered, percentile, summarize, throughput_per_s


def test_percentiles_hand_worked():
    # 1..10: rank h = 9 q / 100; p90 -> h = 8.1 -> 9 + 0.1 * (10 - 9) = 9.1
    samples = [float(v) for v in range(1, 11)]
    assert percentile(samples, 50) == pytest.approx(5.5)
    assert percentile(samples, 90) == pytest.approx(9.1)
    assert percentile(samples, 95) == pytest.approx(9.55)
    assert percentile(samples, 99) == pytest.approx(9.91)
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 10.0


def test_single_sample_is_every_statistic():
    s = summarize([4.25])
    assert [s[k] for k in STAT_KEYS] == [4.25] * len(STAT_KEYS)
    assert s["std"] == 0.0 and s["count"] == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_matches_numpy_linear_definition(seed):
    rng = np.random.default_rng(seed)
    samples = rng.lognormal(mean=2.0, sigma=0.6, size=int(rng.integers(2, 500)))
    s = summarize(samples.tolist())
    assert s["min"] == pytest.approx(samples.min())
    assert s["max"] == pytest.approx(samples.max())
    assert s["mean"] == pytest.approx(samples.mean())
    assert s["std"] == pytest.approx(samples.std())
    for key, q in (("median", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert s[key] == pytest.approx(np.percentile(samples, q, method="linear"))
    assert is_ordered(s)
    assert s["count"] == samples.size


def test_order_of_input_does_not_matter():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert summarize(values) == summarize(sorted(values))
    assert summarize(values)["median"] == 3.0


def test_is_ordered_detects_a_broken_summary():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    s["p95"] = s["max"] + 1.0
    assert not is_ordered(s)


def test_bad_samples_are_refused():
    with pytest.raises(BenchmarkError, match="no samples"):
        summarize([])
    with pytest.raises(BenchmarkError, match="finite"):
        summarize([1.0, float("nan")])
    with pytest.raises(BenchmarkError, match="out of range"):
        percentile([1.0, 2.0], 101)


def test_throughput():
    assert throughput_per_s(50, 2.0) == 25.0
    with pytest.raises(BenchmarkError):
        throughput_per_s(1, 0.0)
