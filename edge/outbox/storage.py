"""What can go wrong with the outbox file, named: corrupt, read-only, disk full.

SQLite reports all of these as `sqlite3.Error`; a kiosk operator needs to know
which one it is, because the fixes differ and one of them is dangerous: moving
a file aside is right for a corrupt outbox and wrong for a read-only or full
disk (it would strand the undelivered results in it). `storage_error` turns a
SQLite error into the matching named error with the fix; `check_integrity`
runs SQLite's quick check at start-up so a damaged page is found before the
first result depends on it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from edge.errors import PublishError

# primary SQLite result codes (the low byte of an extended code)
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26
LOW_DISK_BYTES = 1024 * 1024  # less than this free counts as a full disk for an I/O error

EXPORT_HINT = "`python -m edge outbox export --out FILE` to save the rows that can still be read"


class OutboxStorageError(PublishError):
    """SQLite could not read or write the outbox file."""


class OutboxCorruptError(OutboxStorageError):
    """The outbox file is damaged (or not an outbox): its pages fail SQLite's checks."""


class OutboxReadOnlyError(OutboxStorageError):
    """The outbox file or its folder cannot be written by this user."""


class OutboxDiskFullError(OutboxStorageError):
    """The disk holding the outbox has no room left."""


def free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _writable(path: Path) -> bool:
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def storage_error(path: Path, exc: BaseException, doing: str) -> OutboxStorageError:
    """The named error for a SQLite failure while `doing` something with the outbox at `path`."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    folder = path.parent
    free = free_bytes(folder)
    if (
        primary == SQLITE_FULL
        or "disk is full" in text
        or (primary == SQLITE_IOERR and free is not None and free < LOW_DISK_BYTES)
    ):
        return OutboxDiskFullError(
            f"outbox {path}: the disk is full while {doing} ({exc}; {free if free is not None else '?'} bytes free "
            f"in {folder}); free space on that disk. Do not move or delete the outbox: it holds undelivered results"
        )
    if (
        primary == SQLITE_READONLY
        or "readonly" in text
        or (primary == SQLITE_CANTOPEN and not _writable(path))
    ):
        return OutboxReadOnlyError(
            f"outbox {path}: cannot write while {doing} ({exc}): {folder} or the file is read-only for this user; "
            "make state_dir writable by the kiosk user (owner, mode, or a read-write mount). Do not move the file: "
            "it holds undelivered results"
        )
    if (
        primary in (SQLITE_CORRUPT, SQLITE_NOTADB)
        or "malformed" in text
        or "not a database" in text
    ):
        return OutboxCorruptError(
            f"outbox {path} is corrupt ({exc}) while {doing}; stop the kiosk, run {EXPORT_HINT}, then move the file "
            "aside (`sqlite3 FILE .recover` may restore more) and restart"
        )
    return OutboxStorageError(f"outbox {path}: SQLite failed while {doing}: {exc}")


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """SQLite's quick check of every page (tables and indexes); OutboxCorruptError naming the first problem."""
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.Error as exc:
        raise storage_error(path, exc, "checking the file") from None
    problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
    if problems:
        first = " / ".join(problems[0].splitlines()[:3])
        raise OutboxCorruptError(
            f"outbox {path} is corrupt (SQLite quick check: {first}); stop the kiosk, run {EXPORT_HINT}, "
            "then move the file aside (`sqlite3 FILE .recover` may restore more) and restart"
        )
