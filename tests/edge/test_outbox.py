"""edge.outbox.store: durable, ordered, budgeted, expiring, and safe to share between two threads."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from edge.errors import PublishError
from edge.outbox.store import ROW_OVERHEAD_BYTES, Outbox, OutboxFullError


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_put_pending_ack_in_order(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        ids = [
            box.put("t/result", f"payload {i}".encode(), 1, message_id=f"m{i}") for i in range(5)
        ]
        assert ids == sorted(ids)
        assert [r.payload for r in box.pending()] == [f"payload {i}".encode() for i in range(5)]
        assert box.depth == 5
        assert box.ack(ids[1]) and not box.ack(ids[1])  # a second ack of the same row is a no-op
        assert [r.message_id for r in box.pending()] == ["m0", "m2", "m3", "m4"]
        assert [r.row_id for r in box.pending(limit=2, after_id=ids[2])] == ids[3:5]
        assert box.depth == 4 and box.stats()["acked_total"] == 1


def test_journal_is_wal_and_rows_survive_reopen(tmp_path):
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        box.put("t", b"x", 1, message_id="a")
        box.put("t", b"y", 1, message_id="b")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Outbox(path) as box:
        assert [r.message_id for r in box.pending()] == ["a", "b"]
        assert box.stats()["used_bytes"] == 2 * (1 + 1 + ROW_OVERHEAD_BYTES)


def test_same_message_id_is_stored_once(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        first = box.put("t", b"x", 1, message_id="same")
        assert box.put("t", b"x", 1, message_id="same") == first
        assert box.depth == 1


def test_rejected_rows_are_parked_with_the_reason_not_retried(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        a = box.put("t", b"a", 1)
        b = box.put("t", b"b", 1)
        assert box.park(a, "Not authorized")
        assert [r.row_id for r in box.pending()] == [b]
        parked = box.parked()
        assert [(r.row_id, r.reason, r.state) for r in parked] == [(a, "Not authorized", "parked")]
        assert "outbox_parked" in box.alarms() and box.stats()["parked"] == 1
        assert box.requeue_parked() == 1 and box.depth == 2 and box.alarms() == []


def test_budget_alarm_then_refusal_never_drops(tmp_path):
    row = 100 + 1 + ROW_OVERHEAD_BYTES  # payload + topic + overhead
    with Outbox(tmp_path / "o.db", disk_budget_bytes=10 * row, alarm_fraction=0.5) as box:
        ids = [box.put("t", bytes(100), 1) for _ in range(4)]
        assert box.alarms() == []
        ids.append(box.put("t", bytes(100), 1))
        assert box.alarms() == ["outbox_near_full"]
        ids += [box.put("t", bytes(100), 1) for _ in range(5)]
        with pytest.raises(OutboxFullError, match="full.*nothing was dropped"):
            box.put("t", bytes(100), 1, message_id="late")
        assert isinstance(OutboxFullError("x"), PublishError)
        stats = box.stats()
        assert stats["refused_total"] == 1 and "outbox_full" in stats["alarms"]
        assert [r.row_id for r in box.pending(limit=100)] == ids  # the oldest are all kept
        box.ack(ids[0])
        box.put("t", bytes(100), 1)  # room again: accepted, full alarm cleared
        assert "outbox_full" not in box.alarms()


def test_expiry_deletes_old_undelivered_rows_and_counts_them(tmp_path, caplog):
    clock = FakeClock()
    # the monotonic clock moves with the wall clock: real time passed, not a clock jump
    with Outbox(tmp_path / "o.db", expire_seconds=86400, clock=clock, monotonic=clock) as box:
        old = box.put("t", b"old", 1)
        box.park(box.put("t", b"old-parked", 1), "Not authorized")
        clock.now += 86400 + 1
        new = box.put("t", b"new", 1)
        with caplog.at_level("WARNING", logger="edge.outbox.store"):
            assert box.expire() == 2
        assert "older than 1.0 days" in caplog.text
        assert [r.row_id for r in box.pending()] == [new] and old != new
        assert box.stats()["expired_total"] == 2 and box.stats()["parked"] == 0
        assert box.expire() == 0


def test_two_threads_put_and_ack_concurrently(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        done = threading.Event()
        acked: list[int] = []

        def acker() -> None:
            while not done.is_set() or box.depth:
                for row in box.pending(limit=10):
                    if box.ack(row.row_id):
                        acked.append(row.row_id)

        thread = threading.Thread(target=acker)
        thread.start()
        put = [box.put("t", f"{i}".encode(), 1, message_id=str(i)) for i in range(300)]
        done.set()
        thread.join(timeout=30)
        assert sorted(acked) == put and box.depth == 0 and box.stats()["used_bytes"] == 0


def test_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(PublishError, match="is corrupt.*outbox export.*move the file aside"):
        Outbox(path)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(PublishError, match="disk budget"):
        Outbox(tmp_path / "o.db", disk_budget_bytes=0)
    with Outbox(tmp_path / "o.db") as box:
        with pytest.raises(PublishError, match="bytes"):
            box.put("t", "text", 1)
        with pytest.raises(PublishError, match="qos"):
            box.put("t", b"x", 3)


CHILD = textwrap.dedent(
    """
    import sys, time
    from edge.outbox.store import Outbox
    box = Outbox(sys.argv[1])
    i = 0
    while True:
        row = box.put("t/result", b"result %d" % i, 1, message_id="r%d" % i)
        print(row, flush=True)  # printed only after the commit returned
        i += 1
        if i % 50 == 0:
            time.sleep(0.01)
    """
)


def test_committed_rows_survive_sigkill(tmp_path):
    path = tmp_path / "o.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    reported: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(reported) < 200 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            reported.append(int(line))
        os.kill(child.pid, signal.SIGKILL)  # mid-write: the child is still inserting
        child.wait(timeout=10)
        reported += [int(x) for x in child.stdout.read().split()]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(reported) >= 200
    with Outbox(path) as box:
        rows = box.pending(limit=100_000)
    ids = [r.row_id for r in rows]
    assert set(reported) <= set(ids)  # every row reported as committed is there
    assert ids == sorted(ids) and ids[: len(reported)] == reported  # in order, no gaps before them
    assert rows[0].payload == b"result 0"
