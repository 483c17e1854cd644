"""SIGTERM and SIGINT, recorded for the kiosk's main loop to act on.

A Python signal handler runs in the main thread between two bytecodes, which
can be while that thread holds a lock: the kiosk's main loop spends its life
in `threading.Event.wait`, which holds the event's (non-reentrant) lock for a
moment on every tick. A handler that calls `Event.set()` then waits for a lock
its own thread holds, and the kiosk hangs with no STOPPING until systemd kills
it. So the handler only stores which signal came (no lock, no logging) and
the main loop turns it into a stop request.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    # what signal.getsignal returns: a handler, SIG_DFL/SIG_IGN, or None (not set from Python)
    SignalHandler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None

__all__ = ["StopSignals"]


class StopSignals:
    """Install handlers that only record which stop signal came; `received()` says it."""

    def __init__(self, signums: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signums = tuple(signums)
        self._received: signal.Signals | None = None
        self._previous: list[tuple[signal.Signals, SignalHandler]] = []

    def install(self) -> None:
        """Set the handlers (main thread only, as `signal.signal` requires)."""
        if self._previous:
            raise RuntimeError("the stop signal handlers are installed already")
        for signum in self.signums:
            self._previous.append((signum, signal.getsignal(signum)))
            signal.signal(signum, self._record)

    def restore(self) -> None:
        """Put back the handlers that were there before `install()`."""
        while self._previous:
            signum, handler = self._previous.pop()
            signal.signal(signum, handler)

    def received(self) -> str | None:
        """The name of the first stop signal received ('SIGTERM'), or None."""
        return self._received.name if self._received is not None else None

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        # an attribute store only: see the module docstring for why nothing more
        if self._received is None:
            self._received = signal.Signals(signum)
