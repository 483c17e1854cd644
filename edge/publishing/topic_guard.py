"""The kiosk's side of the test-topic rule (gaitcontract.topic_guard): its flags and its error type.

`python -m edge demo` and the benchmarks that publish through the kiosk
(benchmarks/pipeline.py, via `python -m benchmarks.latency --pipeline`) publish
under the test prefix by default and refuse a production prefix unless
`--allow-production-prefix` is given.
"""

from __future__ import annotations

import argparse

from edge.errors import ConfigError
from gaitcontract.topic_guard import ALLOW_FLAG, TEST_PREFIX, is_production, production_refusal

__all__ = ["TEST_PREFIX", "add_topic_flags", "guarded_prefix", "is_production"]


def guarded_prefix(prefix: str | None, allow_production: bool, tool: str) -> str:
    """The prefix `tool` publishes under: `prefix`, or TEST_PREFIX when None.

    ConfigError naming the flag when it is a production prefix and `allow_production` is False."""
    chosen = (prefix or TEST_PREFIX).strip().strip("/")
    why = production_refusal(chosen, allow_production, tool)
    if why is not None:
        raise ConfigError(why)
    return chosen


def add_topic_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--topic-prefix and --allow-production-prefix, the same for every tool that publishes test data."""
    parser.add_argument(
        "--topic-prefix",
        help=f"first topic levels of what is published (default: the test prefix {TEST_PREFIX}); "
        f"a production prefix (gaitmil/...) needs {ALLOW_FLAG}",
    )
    parser.add_argument(
        ALLOW_FLAG,
        action="store_true",
        help="allow publishing under the production prefix, into real records (never for tests)",
    )
