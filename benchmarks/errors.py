"""Exception hierarchy of the benchmarks package."""

from __future__ import annotations


class BenchmarkError(Exception):
    """A benchmark was asked for something it cannot measure (bad option, missing model, non-loopback broker...).

    The message names the thing, what was expected and how to fix it.
    """
