"""Test data never mixes with real records: one rule for every tool that publishes test results.

Central stores whatever arrives under the production prefix (`gaitmil/v1`, and any
later `gaitmil/vN`) as real screening results and cannot tell a demo's or a
benchmark's fake result from a child's. The kiosk demo, central's demo and the
benchmarks that publish therefore default to TEST_PREFIX and refuse a production
prefix unless the operator passes ALLOW_FLAG. Numpy-free and torch-free: the kiosk,
central and the benchmarks all import it.
"""

from __future__ import annotations

from gaitcontract.topics import DEFAULT_PREFIX

# the production prefix's first level: gaitmil/v1 and any later gaitmil/vN hold real records
PRODUCTION_ROOT = DEFAULT_PREFIX.split("/")[0]
TEST_PREFIX = "gaitmil-test/v1"
ALLOW_FLAG = "--allow-production-prefix"


def is_production(prefix: str) -> bool:
    """True for a prefix under the production root (`gaitmil/...`)."""
    return prefix.strip().strip("/").split("/", 1)[0] == PRODUCTION_ROOT


def production_refusal(prefix: str, allow_production: bool, tool: str) -> str | None:
    """Why `tool` may not publish under `prefix`, or None when it may.

    Each caller raises the message as its own package's error, so the exit code stays
    the one its command documents."""
    clean = prefix.strip().strip("/")
    if not clean or "+" in clean or "#" in clean:
        return f"{tool}: --topic-prefix {prefix!r} is not a plain topic path like {TEST_PREFIX!r}"
    if is_production(clean) and not allow_production:
        return (
            f"{tool}: topic prefix {prefix!r} is where real kiosks publish and central stores real "
            f"screening results; test results published there cannot be told from a child's. Leave "
            f"--topic-prefix out to publish under {TEST_PREFIX!r}, or pass {ALLOW_FLAG} if you "
            "really mean to publish test data into real records"
        )
    return None
