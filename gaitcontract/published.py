"""The JSON Schemas of the messages a kiosk publishes (`schemas/*.schema.json`).

One copy, read as package data by the kiosk (to validate what it sends) and by the central
server (to validate what it receives).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

SCHEMA_NAMES = ("result", "status")


@cache
def load_schema(name: str) -> dict:
    """The published JSON Schema `name` (`result`, `status`) as a dict."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"no published schema {name!r}: one of {', '.join(SCHEMA_NAMES)}")
    text = (
        resources.files("gaitcontract")
        .joinpath("schemas", f"{name}.schema.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)
