"""Benchmark topic prefixes: test data never lands on the production prefix by accident.

Issue 23: `python -m benchmarks.fanin` against the documented broker published
fake results as site "bench" on `gaitmil/v1`, and they showed on a district's
pages. Benchmarks publish under the test prefix by default and refuse the
production prefix unless the operator says so (gaitcontract.topic_guard's rule).
"""

from __future__ import annotations

from benchmarks.errors import BenchmarkError
from gaitcontract.topic_guard import ALLOW_FLAG, TEST_PREFIX, production_refusal
from gaitcontract.topics import DEFAULT_PREFIX

PRODUCTION_PREFIX = DEFAULT_PREFIX
BENCH_PREFIX = TEST_PREFIX
__all__ = ["ALLOW_FLAG", "BENCH_PREFIX", "PRODUCTION_PREFIX", "check_prefix"]


def check_prefix(prefix: str, allow_production: bool) -> str:
    """`prefix` when a benchmark may publish under it; BenchmarkError naming the flag otherwise."""
    why = production_refusal(prefix, allow_production, "benchmark")
    if why is not None:
        raise BenchmarkError(why)
    return prefix.strip().strip("/")
