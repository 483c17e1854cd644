"""paho's network thread ends on an exception escaping a callback: every callback is wrapped.

The publisher and the reference subscriber both wrap theirs with `guard_callback`; each says how
to count and report what was caught (`on_error`), so a hostile message can end neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")


def guard_callback(
    name: str,
    callback: Callable[P, None],
    on_error: Callable[[str, Exception], None],
) -> Callable[P, None]:
    """`callback` with every Exception caught and handed to `on_error(name, exc)` instead."""

    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - anything escaping would end paho's network thread
            on_error(name, exc)

    return guarded
