"""How old an outbox row is, when the wall clock may be wrong.

A kiosk whose clock was far behind when it stored results must not delete them
as expired when the clock is put right. The outbox remembers the wall time it
last saw (table `outbox_clock`, updated at each expiry check and at close). At
opening, a jump forward larger than the whole expiry period since then (a
clock that was far behind, or a kiosk switched off that long: the two cannot be
told apart) is not counted as age: the rows' timestamps move forward by it and
a warning is logged. While running, a wall clock that runs ahead of the
monotonic clock by more than CLOCK_SLACK_S is treated the same way. Rows
stamped in the future count as stored now. Shorter switch-offs (nights,
weekends) count normally.

A mixin of edge.outbox.store.Outbox: it uses the outbox's connection, clocks and path,
and is called with the outbox's lock held (or before the outbox is shared).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("edge.outbox.store")

CLOCK_SLACK_S = (
    600.0  # wall clock ahead of the monotonic clock by more than this = the clock was set
)


class ExpiryClock:
    """Row ages that survive wall-clock jumps; mixed into edge.outbox.store.Outbox."""

    # the Outbox's state this mixin uses (set in Outbox.__init__)
    path: Path
    expire_seconds: float
    _conn: sqlite3.Connection
    _clock: Callable[[], float]
    _monotonic: Callable[[], float]
    _wall_mark: float
    _mono_mark: float

    def _rebase_clock_at_open(self) -> None:
        """See the module docstring: a wall-clock jump is not age."""
        now = self._clock()
        found = self._conn.execute("SELECT wall FROM outbox_clock WHERE id = 1").fetchone()
        if found is not None:
            gap = now - float(found[0])
            if gap > self.expire_seconds:
                self._shift_created(
                    gap,
                    f"the wall clock is {gap / 86400.0:.1f} days past the last time this "
                    "outbox was used (a clock that was behind, or switched off that long)",
                )
        future = self._conn.execute(
            "UPDATE outbox SET created = ? WHERE created > ?", (now, now)
        ).rowcount
        if future:
            log.warning(
                "outbox %s: %d row(s) were stamped in the future (clock was ahead); counted as stored now",
                self.path,
                future,
            )
        self._save_wall(now)
        self._wall_mark, self._mono_mark = now, self._monotonic()

    def _shift_created(self, seconds: float, why: str) -> None:
        moved = self._conn.execute("UPDATE outbox SET created = created + ?", (seconds,)).rowcount
        if moved:
            log.warning(
                "outbox %s: %s; not counted toward expiry: %d undelivered row(s) keep their age",
                self.path,
                why,
                moved,
            )

    def _save_wall(self, now: float) -> None:
        self._conn.execute(
            "INSERT INTO outbox_clock (id, wall) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET wall = excluded.wall",
            (now,),
        )

    def _track_clock(self) -> float:
        """The wall time now, after moving rows forward by any jump of the wall clock since the last call."""
        now, mono = self._clock(), self._monotonic()
        ahead = (now - self._wall_mark) - (mono - self._mono_mark)
        if ahead > CLOCK_SLACK_S:
            self._shift_created(
                ahead, f"the wall clock jumped {ahead / 3600.0:.1f} h ahead while running"
            )
        self._wall_mark, self._mono_mark = now, mono
        self._save_wall(now)
        return now
