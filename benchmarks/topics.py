"""Benchmark and demo topic prefixes: test data never lands on the production prefix by accident.

Issue 23: `python -m benchmarks.fanin` against the documented broker published
fake results as site "bench" on `gaitmil/v1`, and they showed on a district's
pages. Benchmarks now publish under BENCH_PREFIX by default and refuse the
production prefix unless the operator says so explicitly.
"""

from __future__ import annotations

from benchmarks.errors import BenchmarkError

PRODUCTION_PREFIX = "gaitmil/v1"
BENCH_PREFIX = "gaitmil-bench/v1"
ALLOW_FLAG = "--allow-production-prefix"


def check_prefix(prefix: str, allow_production: bool) -> str:
    """`prefix` when a benchmark may publish under it; BenchmarkError naming the flag otherwise."""
    clean = prefix.strip().rstrip("/")
    if not clean or "+" in clean or "#" in clean:
        raise BenchmarkError(
            f"--topic-prefix {prefix!r}: use a plain topic path like {BENCH_PREFIX}"
        )
    if clean.split("/")[0] == PRODUCTION_PREFIX.split("/")[0] and not allow_production:
        raise BenchmarkError(
            f"--topic-prefix {prefix!r} is the production prefix: benchmark results would mix with "
            f"real records. Use the default {BENCH_PREFIX}, or pass {ALLOW_FLAG} if that is really meant"
        )
    return clean
