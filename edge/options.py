"""Keyword options of any type read as the number or text a component needs.

Sources and runners take `**options: object`: strings from a URI's query, numbers and flags
from the config, objects from tests (a pyrealsense2 context, a camera). These turn one such
value into an int, float or text, raising TypeError or ValueError, as int()/float() do, for a
value they cannot take; the caller turns that into its own error naming the option.
"""

from __future__ import annotations

from typing import SupportsFloat, SupportsIndex, SupportsInt


def int_of(value: object) -> int:
    """`int(value)` for an option of any type: TypeError where int() takes no such value."""
    if isinstance(value, str | bytes | SupportsInt | SupportsIndex):
        return int(value)
    raise TypeError(f"int() cannot take a {type(value).__name__}")


def float_of(value: object) -> float:
    """`float(value)` for an option of any type: TypeError where float() takes no such value."""
    if isinstance(value, str | bytes | SupportsFloat | SupportsIndex):
        return float(value)
    raise TypeError(f"float() cannot take a {type(value).__name__}")


def text_or_none(value: object) -> str | None:
    """An option naming something (a library, a file): None when unset, else its text."""
    return None if value is None else str(value)
