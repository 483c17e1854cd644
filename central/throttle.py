"""Login throttling per account and per client address, with exponential back-off (issue 23).

Every failed login counts against two keys, `user:<name>` and `addr:<client>`.
After FREE_FAILURES failures of an account (ADDR_FREE_FAILURES of an address,
more since a school's nurses may share one address) a key is locked for BASE_S, doubling with each
further failure up to MAX_S; while either key is locked, logins are refused
without checking the password. A success clears the account's key; an
address's count starts again RESET_S after its last failure. The state is in
the database, so it holds across several web fronts and restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import LoginThrottle

FREE_FAILURES = 3
ADDR_FREE_FAILURES = 10
BASE_S = 2.0
MAX_S = 15 * 60.0
RESET_S = 15 * 60.0
USER, ADDR = "user:", "addr:"


def user_key(username: str) -> str:
    return USER + username.strip().lower()[:64]


def addr_key(address: str | None) -> str:
    return ADDR + (address or "unknown")[:128]


@dataclass(frozen=True)
class Lock:
    key: str
    seconds: float  # until the lock ends


def locked(db: Session, keys: list[str], now: datetime | None = None) -> Lock | None:
    """The longest running lock among `keys`, or None."""
    now = now or datetime.now(timezone.utc)
    worst: Lock | None = None
    for row in db.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys))):
        if row.locked_until is not None and row.locked_until > now:
            left = (row.locked_until - now).total_seconds()
            if worst is None or left > worst.seconds:
                worst = Lock(row.key, left)
    return worst


def backoff_s(failures: int, free: int = FREE_FAILURES) -> float:
    """Lock length after `failures` failures: 0 for the `free` ones, then BASE_S doubling to MAX_S."""
    if failures <= free:
        return 0.0
    return min(BASE_S * 2.0 ** min(failures - free - 1, 30), MAX_S)


def record_failure(db: Session, key: str, now: datetime | None = None) -> Lock | None:
    """Count a failed login for `key`; the lock it now starts, if any."""
    now = now or datetime.now(timezone.utc)
    row = db.get(LoginThrottle, key, with_for_update=True)
    if row is None:
        row = LoginThrottle(key=key, failures=0, last_failure=now)
        db.add(row)
    elif (now - row.last_failure).total_seconds() > RESET_S and (
        row.locked_until is None or row.locked_until <= now
    ):
        row.failures = 0  # quiet for a while: start counting again
    row.failures += 1
    row.last_failure = now
    seconds = backoff_s(row.failures, ADDR_FREE_FAILURES if key.startswith(ADDR) else FREE_FAILURES)
    row.locked_until = now + timedelta(seconds=seconds) if seconds else None
    db.flush()
    return Lock(key, seconds) if seconds else None


def clear(db: Session, key: str) -> None:
    row = db.get(LoginThrottle, key)
    if row is not None:
        db.delete(row)


def locked_accounts(db: Session, now: datetime | None = None) -> dict[str, datetime]:
    """username (lower case) -> when its lock ends, for accounts locked now."""
    now = now or datetime.now(timezone.utc)
    rows = db.scalars(
        select(LoginThrottle).where(
            LoginThrottle.key.startswith(USER), LoginThrottle.locked_until > now
        )
    )
    return {r.key[len(USER) :]: r.locked_until for r in rows if r.locked_until is not None}
