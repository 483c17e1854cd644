"""Test data never mixes with real records: demos and benchmarks publish under a test prefix.

Central stores whatever arrives under the production prefix (`gaitmil/v1`, the
default of mqtt.topic_prefix) as real screening results, and cannot tell a
benchmark's fake results from a child's. `python -m edge demo` and the benchmarks
that publish (benchmarks/pipeline.py, via `python -m benchmarks.latency
--pipeline`) therefore publish under TEST_PREFIX by default, and refuse a
production prefix unless the operator says so with `--production-topics`.
"""

from __future__ import annotations

import argparse

from edge.errors import ConfigError

TEST_PREFIX = "gaitmil-test/v1"
PRODUCTION_ROOT = "gaitmil"  # gaitmil/v1 and any later gaitmil/vN are where real records live
PRODUCTION_FLAG = "--production-topics"


def is_production(prefix: str) -> bool:
    """True for a prefix under the production root (`gaitmil/...`)."""
    return prefix.strip("/").split("/", 1)[0] == PRODUCTION_ROOT


def guarded_prefix(prefix: str | None, allow_production: bool, tool: str) -> str:
    """The prefix `tool` publishes under: `prefix`, or TEST_PREFIX when None.

    ConfigError naming the flag when it is a production prefix and `allow_production` is False."""
    chosen = prefix or TEST_PREFIX
    if is_production(chosen) and not allow_production:
        raise ConfigError(
            f"{tool}: topic prefix {chosen!r} is where real kiosks publish and central stores real "
            f"screening results; test results published there cannot be told from a child's. Leave "
            f"--topic-prefix out to publish under {TEST_PREFIX!r}, or pass {PRODUCTION_FLAG} if you "
            "really mean to publish test data into real records"
        )
    return chosen


def add_topic_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--topic-prefix and --production-topics, the same for the demo and every benchmark that publishes."""
    parser.add_argument(
        "--topic-prefix",
        help=f"first topic levels of what is published (default: the test prefix {TEST_PREFIX}); "
        f"a production prefix (gaitmil/...) needs {PRODUCTION_FLAG}",
    )
    parser.add_argument(
        PRODUCTION_FLAG,
        action="store_true",
        help="allow publishing under the production prefix, into real records (never for tests)",
    )
