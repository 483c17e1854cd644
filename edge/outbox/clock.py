"""How old an outbox row is, when the wall clock may be wrong.

A kiosk whose clock was far behind when it stored results must not delete them
as expired when the clock is put right. The outbox remembers the wall time it
last saw (table `outbox_clock`, owned by ExpiryClock, updated at each expiry
check and at close). At opening, a jump forward larger than the whole expiry
period since then (a clock that was far behind, or a kiosk switched off that
long: the two cannot be told apart) is not counted as age: the rows' timestamps
move forward by it and a warning is logged. While running, a wall clock that
runs ahead of the monotonic clock by more than CLOCK_SLACK_S is treated the same
way. Rows stamped in the future count as stored now. Shorter switch-offs
(nights, weekends) count normally.

edge.outbox.store.Outbox owns one ExpiryClock on its connection and calls it with
the outbox's lock held (or before the outbox is shared); SQLite errors are left
to the outbox, which names them.
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

_SCHEMA = "CREATE TABLE IF NOT EXISTS outbox_clock (id INTEGER PRIMARY KEY CHECK (id = 1), wall REAL NOT NULL)"


class ExpiryClock:
    """Row ages that survive wall-clock jumps, for the `outbox` table of the connection `conn`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._path = path  # for the log lines only
        self._clock = clock
        self._monotonic = monotonic
        conn.execute(_SCHEMA)
        self._marks: tuple[float, float] | None = None  # (wall, monotonic) at the last look

    def rebase_at_open(self, expire_seconds: float) -> None:
        """See the module docstring: a wall-clock jump is not age."""
        now = self._clock()
        found = self._conn.execute("SELECT wall FROM outbox_clock WHERE id = 1").fetchone()
        if found is not None:
            gap = now - float(found[0])
            if gap > expire_seconds:
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
                self._path,
                future,
            )
        self._write_wall(now)
        self._marks = (now, self._monotonic())

    def now(self) -> float:
        """The wall time now, after moving rows forward by any jump of the wall clock since the last call."""
        now, mono = self._clock(), self._monotonic()
        wall_mark, mono_mark = self._marks if self._marks is not None else (now, mono)
        ahead = (now - wall_mark) - (mono - mono_mark)
        if ahead > CLOCK_SLACK_S:
            self._shift_created(
                ahead, f"the wall clock jumped {ahead / 3600.0:.1f} h ahead while running"
            )
        self._marks = (now, mono)
        self._write_wall(now)
        return now

    def save(self) -> None:
        """Remember the wall time now: the next opening measures clock jumps from here."""
        self._write_wall(self._clock())

    def last_seen(self) -> float | None:
        """The wall time the outbox last saw (None before the first save)."""
        found = self._conn.execute("SELECT wall FROM outbox_clock WHERE id = 1").fetchone()
        return None if found is None else float(found[0])

    def _shift_created(self, seconds: float, why: str) -> None:
        moved = self._conn.execute("UPDATE outbox SET created = created + ?", (seconds,)).rowcount
        if moved:
            log.warning(
                "outbox %s: %s; not counted toward expiry: %d undelivered row(s) keep their age",
                self._path,
                why,
                moved,
            )

    def _write_wall(self, now: float) -> None:
        self._conn.execute(
            "INSERT INTO outbox_clock (id, wall) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET wall = excluded.wall",
            (now,),
        )
