"""The durable outbox: every result is on disk before it is published.

SQLite in WAL mode. A `put` commits with synchronous=FULL (fsync), so a
stored row survives SIGKILL and power loss. Deletions on acknowledgement
commit with synchronous=NORMAL (no fsync of their own; the next FULL commit
or checkpoint makes them durable): losing one in a power cut only means the
row is published again, a duplicate that dashboards drop by id, and it saves
one fsync per result on the way to the broker. A row leaves only when the broker acknowledges it; a row the
broker rejects (MQTT 5 reason code >= 0x80) is *parked* with the reason and
not retried. Rows drain in insertion order (AUTOINCREMENT ids never repeat).

Disk budget: the outbox counts the bytes of its rows (payload + topic + a fixed
per-row overhead). Above `alarm_fraction` of the budget it raises the
`outbox_near_full` alarm; when a new row would exceed the budget it refuses
the row with OutboxFullError and raises `outbox_full`. It keeps the oldest
rows: nothing undelivered is ever deleted to make room. Undelivered rows older
than `expire_seconds` are deleted (screening results are health data and must
not linger) with a log line, and counted in `stats()["expired_total"]`.

Expiry does not trust the wall clock blindly (a wall-clock jump is not age):
see edge.outbox.clock.

A row the broker refused is parked; `requeue_parked` puts parked rows back,
and the publisher does it once per start for rows parked fewer than
AUTO_REQUEUE_MAX_PARKS times (the `attempts` column counts the parkings).

SQLite failures raise the named errors of edge.outbox.storage (corrupt,
read-only, disk full), at opening and on every later read or write.

Every row carries a SHA-256 checksum of its topic and payload (format version 2,
edge.outbox.checksum), verified by `pending` before a row can be published: a
damaged row is set to state `corrupt` (alarm `outbox_corrupt_row`) and never
published. A 0-byte outbox file is refused as corrupt, with what to do.

All methods take one internal lock for a short SQLite transaction, so the
service thread (put) and the publisher's owner thread (ack/park) may share an
Outbox; no callback ever runs under that lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from edge.errors import PublishError
from edge.outbox.checksum import CORRUPT, check_not_truncated, damage, migrate, row_checksum
from edge.outbox.clock import ExpiryClock
from edge.outbox.storage import (
    OutboxCorruptError,
    OutboxDiskFullError,
    OutboxReadOnlyError,
    OutboxStorageError,
    check_integrity,
    storage_error,
)

if TYPE_CHECKING:
    from edge.settings import KioskConfig

__all__ = [
    "AUTO_REQUEUE_MAX_PARKS",
    "Outbox",
    "OutboxCorruptError",
    "OutboxDiskFullError",
    "OutboxFullError",
    "OutboxReadOnlyError",
    "OutboxRow",
    "OutboxStats",
    "OutboxStorageError",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the checksum column (a version-1 file is upgraded in place at opening)
READABLE_VERSIONS = (0, 1, 2)  # 0: a file SQLite has just created
ROW_OVERHEAD_BYTES = 128  # index entries, row header and page slack per row, roughly
PENDING = "pending"
PARKED = "parked"
AUTO_REQUEUE_MAX_PARKS = (
    3  # a row refused this many times waits for `python -m edge outbox requeue`
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    checksum TEXT
);
CREATE INDEX IF NOT EXISTS outbox_state_id ON outbox (state, id);
"""
_COLUMNS = "id, message_id, topic, payload, qos, retain, created, attempts, state, reason, checksum"


class OutboxStats(TypedDict):
    """`Outbox.stats()`: rows by state, the disk budget, the counters of this run, the alarms."""

    pending: int
    parked: int
    corrupt: int
    used_bytes: int
    budget_bytes: int
    used_fraction: float
    file_bytes: int
    acked_total: int
    parked_total: int
    expired_total: int
    corrupt_total: int
    refused_total: int
    alarms: list[str]


class OutboxFullError(PublishError):
    """The outbox's disk budget is used up: the new result was refused (nothing was dropped)."""


@dataclass(frozen=True)
class OutboxRow:
    row_id: int
    message_id: str | None
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float
    attempts: int
    state: str
    reason: str | None
    checksum: str | None = None


class Outbox:
    """A SQLite outbox with a disk budget; see the module docstring for the rules."""

    def __init__(
        self,
        path: str | Path,
        *,
        disk_budget_bytes: int = 256 * 1024 * 1024,
        alarm_fraction: float = 0.8,
        expire_seconds: float = 14 * 86400.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        check: bool = True,
    ) -> None:
        if disk_budget_bytes <= 0:
            raise PublishError(
                f"outbox disk budget must be positive, got {disk_budget_bytes} bytes; fix outbox.disk_budget_mb"
            )
        if not 0 < alarm_fraction <= 1:
            raise PublishError(
                f"outbox alarm_fraction must be in (0, 1], got {alarm_fraction}; fix outbox.alarm_fraction"
            )
        self.path = Path(path)
        self.disk_budget_bytes = int(disk_budget_bytes)
        self.alarm_fraction = float(alarm_fraction)
        self.expire_seconds = float(expire_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self.expired_total = 0
        self.refused_total = 0
        self.parked_total = 0
        self.acked_total = 0
        self.corrupt_total = 0  # rows found damaged by their checksum in this run
        self._corrupt_ids: set[int] = set()  # damaged rows whose state could not be written yet
        self._corrupt = 0
        self._full = False  # the last put was refused; cleared by the next accepted put
        self._conn = self._open(check)
        try:
            self._used_bytes, self._pending, self._parked, self._corrupt = self._measure()
            # row ages that survive wall-clock jumps (edge.outbox.clock), in its own table
            self._expiry = ExpiryClock(self._conn, self.path, clock, monotonic)
            self._expiry.rebase_at_open(self.expire_seconds)
        except sqlite3.Error as exc:
            self._conn.close()
            raise storage_error(self.path, exc, "reading it at start-up") from None
        except OutboxStorageError:
            self._conn.close()
            raise

    @classmethod
    def from_config(cls, cfg: KioskConfig) -> Outbox:
        return cls(
            cfg.outbox_path,
            disk_budget_bytes=int(cfg.outbox.disk_budget_mb * 1024 * 1024),
            alarm_fraction=cfg.outbox.alarm_fraction,
            expire_seconds=cfg.outbox.expire_days * 86400.0,
        )

    # -- opening --------------------------------------------------------------------------------

    def _open(self, check: bool) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(
                f"outbox folder {self.path.parent} cannot be created: {exc}; fix outbox.path or state_dir"
            ) from None
        check_not_truncated(self.path)  # SQLite would take a 0-byte file for a new, empty outbox
        conn = None
        try:
            # isolation_level=None: explicit BEGIN/COMMIT, so a commit is exactly where we say
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0
            )
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute(
                "PRAGMA synchronous=FULL"
            )  # a kiosk may lose power; NORMAL would survive SIGKILL only
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in READABLE_VERSIONS:
                conn.close()
                raise PublishError(
                    f"outbox {self.path} has format version {version}, this kiosk reads {FORMAT_VERSION}; "
                    "deliver or move the old file aside before upgrading"
                )
            if check:
                # a damaged page (data or index) is found now, not at the first read of a running kiosk
                check_integrity(conn, self.path)
            conn.executescript(_SCHEMA)
            # a version-1 file: its rows get their checksums, nothing is lost
            upgraded = migrate(conn)
            conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
            conn.execute("SELECT count(*) FROM outbox").fetchone()
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise storage_error(self.path, exc, "opening it") from None
        except OutboxStorageError:
            if conn is not None:
                conn.close()
            raise
        if upgraded:
            log.info(
                "outbox %s: upgraded to format %d (row checksums); %d stored row(s) kept",
                self.path,
                FORMAT_VERSION,
                upgraded,
            )
        if str(mode).lower() != "wal":
            log.warning(
                "outbox %s: journal mode is %s, not WAL (file system without shared memory?)",
                self.path,
                mode,
            )
        return conn

    def _measure(self) -> tuple[int, int, int, int]:
        row = self._conn.execute(
            "SELECT coalesce(sum(length(payload) + length(topic)), 0) + count(*) * ?, "
            "coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'parked'), 0), "
            "coalesce(sum(state = 'corrupt'), 0) FROM outbox",
            (ROW_OVERHEAD_BYTES,),
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    # -- writing --------------------------------------------------------------------------------

    def put(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        message_id: str | None = None,
        retain: bool = False,
    ) -> int:
        """Commit one message; returns its row id. A message_id already stored returns that row's id.

        Raises OutboxFullError (and sets the `outbox_full` alarm) when the disk budget is used up,
        an OutboxStorageError (disk full, read-only, corrupt) when SQLite cannot store it.
        """
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise PublishError(
                f"outbox payload must be bytes, got {type(payload).__name__}; encode the result first"
            )
        if qos not in (0, 1, 2):
            raise PublishError(f"outbox qos must be 0, 1 or 2, got {qos!r}")
        size = len(payload) + len(topic.encode("utf-8")) + ROW_OVERHEAD_BYTES
        with self._lock:
            try:
                if message_id is not None:
                    found = self._conn.execute(
                        "SELECT id FROM outbox WHERE message_id = ?", (message_id,)
                    ).fetchone()
                    if found is not None:
                        return int(found[0])
                if self._used_bytes + size > self.disk_budget_bytes:
                    self.refused_total += 1
                    self._full = True
                    raise OutboxFullError(
                        f"outbox {self.path} is full ({self._used_bytes} of {self.disk_budget_bytes} bytes, "
                        f"{self._pending + self._parked} undelivered): result {message_id} refused, nothing was "
                        "dropped; restore the broker link or raise outbox.disk_budget_mb"
                    )
                self._conn.execute("PRAGMA synchronous=FULL")
                cur = self._conn.execute(
                    "INSERT INTO outbox (message_id, topic, payload, qos, retain, created, checksum) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        message_id,
                        topic,
                        bytes(payload),
                        int(qos),
                        int(bool(retain)),
                        self._clock(),
                        row_checksum(topic, bytes(payload)),
                    ),
                )
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc, f"storing message {message_id}") from None
            self._used_bytes += size
            self._pending += 1
            self._full = False
            row_id = cur.lastrowid
            if row_id is None:  # sqlite3 sets it after every INSERT; None would be a driver fault
                raise OutboxStorageError(
                    f"outbox {self.path}: the INSERT of {message_id} reported no row id"
                )
            return row_id

    def ack(self, row_id: int) -> bool:
        """The broker acknowledged the row: delete it. False if it was not there (already acked)."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT length(payload) + length(topic), state FROM outbox WHERE id = ?",
                    (row_id,),
                ).fetchone()
                if row is None:
                    return False
                self._conn.execute("PRAGMA synchronous=NORMAL")  # see the module docstring
                self._conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc, f"deleting delivered row {row_id}") from None
            self._forget(int(row[0]), row[1])
            self.acked_total += 1
            return True

    def park(self, row_id: int, reason: str) -> bool:
        """The broker refused the row: keep it, with the reason, and stop retrying it (counted in `attempts`)."""
        with self._lock:
            try:
                cur = self._conn.execute(
                    "UPDATE outbox SET state = 'parked', reason = ?, attempts = attempts + 1 "
                    "WHERE id = ? AND state = 'pending'",
                    (reason, row_id),
                )
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc, f"parking refused row {row_id}") from None
            if cur.rowcount == 0:
                return False
            self._pending -= 1
            self._parked += 1
            self.parked_total += 1
        log.error(
            "outbox %s: broker refused row %d (%s); parked, not retried", self.path, row_id, reason
        )
        return True

    def requeue_parked(self, max_parks: int | None = None, row_ids: list[int] | None = None) -> int:
        """Move parked rows back to pending (after an operator fixed the broker ACL). Returns how many.

        `max_parks`: only rows parked fewer times (the automatic requeue at start); `row_ids`: only these.
        """
        where, args = "state = 'parked'", []
        if max_parks is not None:
            where += " AND attempts < ?"
            args.append(int(max_parks))
        if row_ids is not None:
            where += f" AND id IN ({', '.join('?' for _ in row_ids)})"
            args += [int(r) for r in row_ids]
        with self._lock:
            try:
                moved = self._conn.execute(
                    f"UPDATE outbox SET state = 'pending', reason = NULL WHERE {where}", args
                ).rowcount
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc, "requeueing parked rows") from None
            self._pending += moved
            self._parked -= moved
            return moved

    def expire(self) -> int:
        """Delete undelivered rows older than expire_seconds; returns how many (logged and counted)."""
        with self._lock:
            try:
                cutoff = self._expiry.now() - self.expire_seconds
                rows = self._conn.execute(
                    "SELECT id, length(payload) + length(topic), state FROM outbox WHERE created < ?",
                    (cutoff,),
                ).fetchall()
                if not rows:
                    return 0
                self._conn.execute("DELETE FROM outbox WHERE created < ?", (cutoff,))
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc, "expiring old rows") from None
            for _, size, state in rows:
                self._forget(int(size), state)
            self.expired_total += len(rows)
        log.warning(
            "outbox %s: deleted %d undelivered message(s) older than %.1f days (privacy expiry; rows %d..%d)",
            self.path,
            len(rows),
            self.expire_seconds / 86400.0,
            rows[0][0],
            rows[-1][0],
        )
        return len(rows)

    def _forget(self, payload_topic_bytes: int, state: str) -> None:
        self._used_bytes -= payload_topic_bytes + ROW_OVERHEAD_BYTES
        if state == PENDING:
            self._pending -= 1
        elif state == CORRUPT:
            self._corrupt -= 1
        else:
            self._parked -= 1

    # -- reading --------------------------------------------------------------------------------

    def pending(self, limit: int = 100, after_id: int = 0) -> list[OutboxRow]:
        """Pending rows in insertion order, with ids above `after_id`, each verified by its checksum.

        A damaged row is not returned: it is set aside as `corrupt` (see `_set_corrupt`)."""
        rows = self._rows(
            "state = 'pending' AND id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
            "reading pending rows",
        )
        intact = []
        for row in rows:
            reason = (
                "damaged earlier in this run"
                if row.row_id in self._corrupt_ids
                else damage(row.topic, row.payload, row.checksum)
            )
            if reason is None:
                intact.append(row)
            else:
                self._set_corrupt(row.row_id, reason)
        return intact

    def _set_corrupt(self, row_id: int, reason: str) -> None:
        """Park a damaged row as `corrupt`: never published, kept for the operator, alarmed."""
        with self._lock:
            first = row_id not in self._corrupt_ids
            self._corrupt_ids.add(row_id)  # skipped even if the state cannot be written (full disk)
            try:
                changed = self._conn.execute(
                    "UPDATE outbox SET state = 'corrupt', reason = ? WHERE id = ? AND state = 'pending'",
                    (reason[:500], row_id),
                ).rowcount
            except sqlite3.Error as exc:
                if first:
                    log.error(
                        "outbox %s: row %d is damaged (%s) and is not published; its state could not "
                        "be written yet: %s",
                        self.path,
                        row_id,
                        reason,
                        exc,
                    )
                return
            self._corrupt_ids.discard(row_id)
            if changed:
                self._pending -= 1
                self._corrupt += 1
                self.corrupt_total += 1
        if changed:
            log.error(
                "outbox %s: row %d is damaged (%s); parked as corrupt, never published. "
                "`python -m edge outbox list --state corrupt` shows it, `export --out FILE` saves it",
                self.path,
                row_id,
                reason,
            )

    def parked(self, limit: int = 100) -> list[OutboxRow]:
        return self._rows("state = 'parked' ORDER BY id LIMIT ?", (limit,), "reading parked rows")

    def rows(
        self, state: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[OutboxRow]:
        """Rows of any state (or of `state`) in id order, read by the table alone (NOT INDEXED), so a
        damaged index does not hide them: what `python -m edge outbox list/export` shows."""
        where = "id > ?" + (" AND state = ?" if state else "")
        args: tuple[object, ...] = (after_id, state) if state else (after_id,)
        return self._rows(
            where + " ORDER BY id LIMIT ?", (*args, limit), "listing rows", "outbox NOT INDEXED"
        )

    def _rows(
        self, where: str, args: tuple[object, ...], doing: str, table: str = "outbox"
    ) -> list[OutboxRow]:
        with self._lock:
            try:
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM {table} WHERE {where}", args
                ).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc, doing) from None
        return [
            OutboxRow(
                r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6], r[7], r[8], r[9], r[10]
            )
            for r in rows
        ]

    @property
    def depth(self) -> int:
        """Undelivered rows waiting to be published."""
        return self._pending

    def alarms(self) -> list[str]:
        used = self._used_bytes / self.disk_budget_bytes
        out = []
        if used >= self.alarm_fraction:
            out.append("outbox_near_full")
        if self._full:
            out.append("outbox_full")
        if self._parked:
            out.append("outbox_parked")
        if self._corrupt or self._corrupt_ids:
            out.append("outbox_corrupt_row")
        return out

    def stats(self) -> OutboxStats:
        """Counters for the health topic."""
        with self._lock:
            file_bytes = sum(p.stat().st_size for p in self._files() if p.exists())
            return {
                "pending": self._pending,
                "parked": self._parked,
                "corrupt": self._corrupt,
                "used_bytes": self._used_bytes,
                "budget_bytes": self.disk_budget_bytes,
                "used_fraction": round(self._used_bytes / self.disk_budget_bytes, 4),
                "file_bytes": file_bytes,
                "acked_total": self.acked_total,
                "parked_total": self.parked_total,
                "expired_total": self.expired_total,
                "corrupt_total": self.corrupt_total,
                "refused_total": self.refused_total,
                "alarms": self.alarms(),
            }

    def _files(self) -> list[Path]:
        return [
            self.path,
            self.path.with_name(self.path.name + "-wal"),
            self.path.with_name(self.path.name + "-shm"),
        ]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._expiry.save()  # the next start measures clock jumps from here
                except sqlite3.Error as exc:
                    log.warning("outbox %s: last-seen time not saved at close: %s", self.path, exc)
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
