"""`python -m edge outbox list | requeue | export`: look at, retry and save the undelivered results.

- `list` prints one line per row (id, state, attempts, age, topic, reason); no payloads.
- `requeue` puts parked rows (refused by the broker, e.g. an ACL that was wrong) back to
  pending, all of them or `--row ID ...`; the kiosk publishes them at its next start (a
  running kiosk also re-counts at its next start; stop it first so its counters stay right).
- `export --out FILE` writes every row as JSON lines (the payload decoded as JSON when it
  is), file mode 0600: the rows are health data. It reads the table alone, without its
  index and without SQLite's start-up check, so it also saves what a damaged outbox still
  holds before the file is moved aside.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from edge.errors import ConfigError, PublishError
from edge.outbox.checksum import check_not_truncated
from edge.outbox.storage import storage_error
from gaitcontract import HelpFormatter

_COLUMNS = "id, message_id, topic, payload, qos, retain, created, attempts, state, reason"


def _say(text: str, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(text + "\n")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "outbox",
        formatter_class=HelpFormatter,
        help="list, requeue or export the results waiting in the outbox",
    )
    commands = p.add_subparsers(dest="outbox_command", required=True)

    def where(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--config", help="kiosk TOML file (its outbox.path / state_dir name the file)"
        )
        q.add_argument("--path", help="the outbox file itself, instead of --config")

    q = commands.add_parser(
        "list", formatter_class=HelpFormatter, help="one line per waiting row (no payloads)"
    )
    where(q)
    q.add_argument("--state", choices=("pending", "parked", "corrupt"))
    q.set_defaults(func=cmd_list)
    q = commands.add_parser(
        "requeue", formatter_class=HelpFormatter, help="put parked rows back to pending"
    )
    where(q)
    q.add_argument("--row", type=int, action="append", help="only this row id (repeatable)")
    q.set_defaults(func=cmd_requeue)
    q = commands.add_parser(
        "export", formatter_class=HelpFormatter, help="write every row as JSON lines (mode 0600)"
    )
    where(q)
    q.add_argument("--out", required=True, help="JSON-lines file to write (must not exist)")
    q.set_defaults(func=cmd_export)


def outbox_path(args: argparse.Namespace) -> Path:
    if args.path:
        return Path(args.path)
    from edge.config import load_config

    return load_config(args.config).outbox_path


def _read_rows(
    path: Path, state: str | None = None
) -> list[tuple]:  # the columns of _COLUMNS, in order
    """Every row, read by the table alone (NOT INDEXED), read-only, without the integrity check."""
    if not path.is_file():
        raise PublishError(
            f"outbox {path} does not exist; check --path or the config's outbox.path / state_dir"
        )
    check_not_truncated(path)  # a 0-byte file holds no rows to list or save: say so, by name
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            where, args = ("WHERE state = ?", (state,)) if state else ("", ())
            return conn.execute(
                f"SELECT {_COLUMNS} FROM outbox NOT INDEXED {where} ORDER BY id", args
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise storage_error(path, exc, "reading its rows") from None


def cmd_list(args: argparse.Namespace) -> int:
    path = outbox_path(args)
    rows = _read_rows(path, args.state)
    now = time.time()
    for r in rows:
        age_h = (now - float(r[6])) / 3600.0
        reason = f"  reason: {r[9]}" if r[9] else ""
        _say(
            f"{r[0]:>8}  {r[8]:<7}  attempts {r[7]}  {age_h:7.1f} h  {r[2]}  {r[1] or '-'}{reason}"
        )
    pending = sum(1 for r in rows if r[8] == "pending")
    corrupt = sum(1 for r in rows if r[8] == "corrupt")  # damaged on disk: never published
    _say(
        f"{path}: {len(rows)} row(s), {pending} pending, {len(rows) - pending - corrupt} parked, "
        f"{corrupt} corrupt",
        err=True,
    )
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    from edge.outbox.store import Outbox

    path = outbox_path(args)
    if not path.is_file():
        raise PublishError(
            f"outbox {path} does not exist; check --path or the config's outbox.path / state_dir"
        )
    with Outbox(path) as box:
        moved = box.requeue_parked(row_ids=args.row)
    _say(
        f"{path}: {moved} parked row(s) put back to pending; the kiosk publishes them at its next start"
    )
    return 0


def _payload(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return {"raw_hex": bytes(raw).hex()}


def cmd_export(args: argparse.Namespace) -> int:
    path = outbox_path(args)
    out = Path(args.out)
    rows = _read_rows(path)
    try:
        fd = os.open(
            out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
        )  # never overwrite, never world-readable
    except FileExistsError:
        raise ConfigError(f"--out {out} exists; give a new file name") from None
    except OSError as exc:
        raise ConfigError(f"--out {out} cannot be created: {exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(
                json.dumps(
                    {
                        "row_id": r[0],
                        "message_id": r[1],
                        "topic": r[2],
                        "qos": r[4],
                        "retain": bool(r[5]),
                        "created": r[6],
                        "attempts": r[7],
                        "state": r[8],
                        "reason": r[9],
                        "payload": _payload(r[3]),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    _say(f"{path}: {len(rows)} row(s) written to {out}")
    return 0
