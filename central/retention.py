"""The retention rule in `central serve`: once at start, then daily, delete records older than N days.

A supervised thread: a failed purge (database away) is logged and tried again
an hour later; the thread itself never dies until stop().
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from central.sites import purge_older_than

log = logging.getLogger(__name__)

DAY_S = 86400.0
RETRY_S = 3600.0


class Retention:
    def __init__(
        self, sessions: sessionmaker[Session], days: float, interval_s: float = DAY_S
    ) -> None:
        self.sessions = sessions
        self.days = days
        self.interval_s = interval_s
        self.runs = 0
        self.purged = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._supervise, name="central-retention", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_once(self) -> int:
        with self.sessions() as db, db.begin():
            count = purge_older_than(db, self.days)
        self.runs += 1
        self.purged += count
        log.info("retention: deleted %d result(s) older than %g days", count, self.days)
        return count

    def _supervise(self) -> None:
        while not self._stop.is_set():
            wait = self.interval_s
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - the timer must live on; the next try is soon
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("retention: purging failed; trying again in %.0f s", RETRY_S)
                wait = min(RETRY_S, self.interval_s)
            self._stop.wait(wait)
