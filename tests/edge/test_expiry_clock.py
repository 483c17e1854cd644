"""edge.outbox.clock.ExpiryClock on its own: a bare SQLite table of rows with a `created` column,
a scripted wall clock and monotonic clock, no Outbox around it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.outbox.clock import CLOCK_SLACK_S, ExpiryClock

DAY = 86400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def conn(tmp_path: Path):
    conn = sqlite3.connect(str(tmp_path / "rows.db"), isolation_level=None)
    conn.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, created REAL NOT NULL)")
    yield conn
    conn.close()


def created(conn: sqlite3.Connection) -> list[float]:
    return [row[0] for row in conn.execute("SELECT created FROM outbox ORDER BY id")]


def test_it_creates_its_own_table_and_remembers_the_wall_time(conn, tmp_path):
    wall, mono = Clock(1_000_000.0), Clock(50.0)
    clock = ExpiryClock(conn, tmp_path / "rows.db", wall, mono)
    assert clock.last_seen() is None  # a new table, nothing seen yet
    clock.rebase_at_open(expire_seconds=14 * DAY)
    assert clock.last_seen() == 1_000_000.0
    wall.now += 30.0
    clock.save()
    # a second clock on the same file (the next start) reads what the first saved
    assert ExpiryClock(conn, tmp_path / "rows.db", wall, mono).last_seen() == 1_000_030.0


def test_a_jump_longer_than_the_expiry_at_opening_is_not_age(conn, tmp_path, caplog):
    wall, mono = Clock(1_000_000.0), Clock(0.0)
    ExpiryClock(conn, tmp_path / "rows.db", wall, mono).rebase_at_open(expire_seconds=DAY)
    conn.execute("INSERT INTO outbox (created) VALUES (?), (?)", (999_000.0, 1_000_000.0))
    wall.now += 3 * DAY  # the clock was put right (or the kiosk was off): longer than the expiry
    with caplog.at_level("WARNING", logger="edge.outbox.store"):
        ExpiryClock(conn, tmp_path / "rows.db", wall, mono).rebase_at_open(expire_seconds=DAY)
    assert created(conn) == [999_000.0 + 3 * DAY, 1_000_000.0 + 3 * DAY]
    assert "3.0 days past the last time" in caplog.text and "2 undelivered row(s)" in caplog.text


def test_a_switch_off_shorter_than_the_expiry_counts_as_age(conn, tmp_path):
    wall, mono = Clock(1_000_000.0), Clock(0.0)
    ExpiryClock(conn, tmp_path / "rows.db", wall, mono).rebase_at_open(expire_seconds=DAY)
    conn.execute("INSERT INTO outbox (created) VALUES (?)", (1_000_000.0,))
    wall.now += DAY / 2  # a night off
    ExpiryClock(conn, tmp_path / "rows.db", wall, mono).rebase_at_open(expire_seconds=DAY)
    assert created(conn) == [1_000_000.0]


def test_rows_stamped_in_the_future_count_as_stored_at_opening(conn, tmp_path, caplog):
    conn.execute("INSERT INTO outbox (created) VALUES (?), (?)", (2_000_000.0, 500.0))
    with caplog.at_level("WARNING", logger="edge.outbox.store"):
        ExpiryClock(conn, tmp_path / "rows.db", Clock(1_000_000.0), Clock(0.0)).rebase_at_open(
            expire_seconds=DAY
        )
    assert created(conn) == [1_000_000.0, 500.0]
    assert "1 row(s) were stamped in the future" in caplog.text


def test_a_wall_clock_running_ahead_of_the_monotonic_clock_is_not_age(conn, tmp_path, caplog):
    wall, mono = Clock(1_000_000.0), Clock(0.0)
    clock = ExpiryClock(conn, tmp_path / "rows.db", wall, mono)
    clock.rebase_at_open(expire_seconds=DAY)
    conn.execute("INSERT INTO outbox (created) VALUES (?)", (1_000_000.0,))
    # real time passing moves both clocks: age, nothing shifted
    wall.now += 3600.0
    mono.now += 3600.0
    assert clock.now() == 1_003_600.0 and created(conn) == [1_000_000.0]
    # within the slack: ordinary drift, not a jump
    wall.now += CLOCK_SLACK_S
    assert clock.now() == 1_003_600.0 + CLOCK_SLACK_S and created(conn) == [1_000_000.0]
    # the wall clock set 5 h ahead while the monotonic clock stood still: the rows move with it
    wall.now += 5 * 3600.0
    with caplog.at_level("WARNING", logger="edge.outbox.store"):
        now = clock.now()
    assert now == wall.now and created(conn) == [1_000_000.0 + 5 * 3600.0]
    assert "jumped 5.0 h ahead while running" in caplog.text
    assert clock.last_seen() == now  # each look is remembered for the next start
