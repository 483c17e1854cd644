"""Outbox rows carry a checksum; a row whose bytes changed on disk is never published.

SQLite's own checks (the quick check at start-up, page checks on read) see a
damaged page structure, not random bytes inside a stored payload: such a row
read back fine and was published as it was. Every row now stores the SHA-256 of
what is published (topic and payload) in the `checksum` column, written with the
row and verified before the row is handed to the broker (edge.outbox.store.Outbox.pending).
A row that fails is set to state `corrupt` with the reason, raises the
`outbox_corrupt_row` alarm and stays for an operator (`python -m edge outbox list
--state corrupt`, `export`); it is never published.

Format version 2 added the column. `migrate` upgrades a version-1 file in one
transaction: its rows get the checksum of what they hold now (damage before the
upgrade cannot be told from data), so they stay readable and are published as before.

An outbox file of 0 bytes is not an empty outbox: SQLite writes its header when it
creates the file, so 0 bytes means the file was truncated (a failed copy, restore
or file-system repair) and its rows are gone. `check_not_truncated` refuses it
with a named error instead of SQLite's silent "new, empty database".
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from edge.outbox.storage import OutboxCorruptError

CORRUPT = "corrupt"


def row_checksum(topic: str, payload: bytes) -> str:
    """SHA-256 (hex) of a row's topic and payload: everything the broker receives from it."""
    digest = hashlib.sha256(topic.encode("utf-8"))
    digest.update(b"\0")  # topic "ab" + payload "c" must differ from topic "a" + payload "bc"
    digest.update(payload)
    return digest.hexdigest()


def damage(topic: str, payload: bytes, checksum: str | None) -> str | None:
    """Why the row's bytes are not what was stored (the reason a row is parked), or None if intact."""
    if checksum is None:
        return "no checksum stored (the row lost it)"
    actual = row_checksum(topic, payload)
    if actual != checksum:
        return (
            f"checksum mismatch: stored {checksum[:16]}..., the row's bytes give {actual[:16]}...; "
            "the row was damaged on disk"
        )
    return None


def has_checksum_column(conn: sqlite3.Connection) -> bool:
    return any(r[1] == "checksum" for r in conn.execute("PRAGMA table_info(outbox)").fetchall())


def migrate(conn: sqlite3.Connection) -> int:
    """Add the checksum column to an outbox without it and fill it in; returns the rows filled."""
    if has_checksum_column(conn):
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE outbox ADD COLUMN checksum TEXT")
        rows = conn.execute("SELECT id, topic, payload FROM outbox NOT INDEXED").fetchall()
        conn.executemany(
            "UPDATE outbox SET checksum = ? WHERE id = ?",
            [(row_checksum(topic, bytes(payload)), row_id) for row_id, topic, payload in rows],
        )
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


def check_not_truncated(path: Path) -> None:
    """OutboxCorruptError for an outbox file of 0 bytes (SQLite would silently start a new one)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return  # a first start: SQLite creates it
    except OSError:
        return  # unreadable: opening it names the problem (read-only, permissions)
    if size == 0:
        raise OutboxCorruptError(
            f"outbox {path} is empty (0 bytes): SQLite writes a header when it creates an outbox, so "
            "the file was truncated (a failed copy, restore or file-system repair) and the results it "
            "held are gone. Restore it from a backup if there is one (with its -wal file); otherwise "
            f"move it aside (`mv {path} {path}.empty`) and restart: a new outbox is created"
        )
