"""Outbox faults with a real SQLite file and a real mosquitto: full disk, read-only, corrupt pages.

A disk that fills is SQLite's own `PRAGMA max_page_count` on the outbox's connection (the
write fails with SQLITE_FULL, as on a full disk); a read-only disk is `PRAGMA query_only`
while running and a directory the kiosk user cannot write at start-up; corruption is
random bytes over chosen pages of a real outbox file. Delivery is counted by a separate
paho subscriber.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from edge.cli import main
from edge.outbox.store import Outbox, OutboxCorruptError, OutboxDiskFullError, OutboxReadOnlyError
from edge.publishing.publisher import Publisher
from tests.edge.kiosk_support import (
    Corridor,
    kiosk_config,
    run_kiosk,
    subscriber_for,
)
from tests.edge.test_faults_session import ResultCounter
from tests.edge.test_mqtt import results, settings_for, wait_until

PAGE = 4096  # SQLite's default page size, which the outbox keeps


def fill_outbox(path: Path, rows: int = 300) -> list[str]:
    with Outbox(path) as box:
        for i in range(rows):
            box.put(
                "gaitmil/v1/site-t/kiosk-t/result",
                b'{"n": %d, "pad": "%s"}' % (i, b"x" * 880),
                1,
                message_id=f"m{i}",
            )
    return [f"m{i}" for i in range(rows)]


def overwrite_pages(path: Path, pages: list[int]) -> None:
    with path.open("r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * PAGE)
            fh.write(os.urandom(PAGE))


def index_root_page(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(
            conn.execute(
                "SELECT rootpage FROM sqlite_master WHERE name = 'outbox_state_id'"
            ).fetchone()[0]
        )


def fill_to_the_limit(box: Outbox) -> None:
    """The disk is full from now on: SQLite may not grow the file by one more page."""
    pages = box._conn.execute("PRAGMA page_count").fetchone()[0]
    box._conn.execute(f"PRAGMA max_page_count = {pages}")


def free_the_disk(box: Outbox) -> None:
    box._conn.execute("PRAGMA max_page_count = 1073741823")


# -- a disk that fills while running -------------------------------------------------------------


def test_results_that_cannot_be_stored_wait_in_memory_and_all_arrive(mosquitto_factory, tmp_path):
    broker = mosquitto_factory()  # down at first: no delivered row frees a page to reuse
    box = Outbox(tmp_path / "o.db")
    publisher = Publisher(settings_for(broker), box)
    publisher.start()
    counter = None
    try:
        fill_to_the_limit(box)
        batch = results(30)
        rows = [publisher.publish_result(r) for r in batch]
        assert rows.count(None) >= 25, "the outbox should have refused most writes on a full disk"
        stats = publisher.stats()
        assert stats["held_in_memory"] == rows.count(None) and "full" in stats["held_error"]
        free_the_disk(box)
        assert wait_until(lambda: publisher.stats()["held_in_memory"] == 0, 15), publisher.stats()
        broker.start()
        counter = ResultCounter(broker)
        assert wait_until(lambda: set(counter.ids) == {r["result_id"] for r in batch}, 15), len(
            set(counter.ids)
        )
        assert wait_until(lambda: box.depth == 0, 5)
        assert publisher.stats()["held_error"] is None and publisher.failure() is None
    finally:
        publisher.stop()
        box.close()
        if counter is not None:
            counter.close()


def test_a_failed_delete_after_the_acknowledgement_is_retried_not_fatal(
    mosquitto_factory, tmp_path
):
    broker = mosquitto_factory()
    box = Outbox(tmp_path / "o.db")
    publisher = Publisher(settings_for(broker), box)
    publisher.start()  # the broker is down: the rows wait
    counter = None
    try:
        first = results(5)
        for result in first:
            publisher.publish_result(result)
        box._conn.execute(
            "PRAGMA query_only = 1"
        )  # every write fails from now on, as on a read-only remount
        broker.start()
        counter = ResultCounter(broker)
        owner = publisher.delivery.thread
        assert wait_until(
            lambda: publisher.counters.get("outbox_errors", 0) > 0 or not owner.is_alive(), 15
        )
        assert owner.is_alive() and publisher.failure() is None, (
            "the outbox thread died on a failed delete"
        )
        assert box.depth == 5  # acknowledged by the broker, not yet deleted
        box._conn.execute("PRAGMA query_only = 0")
        assert wait_until(lambda: box.depth == 0, 10), publisher.stats()
        later = results(3)
        for result in later:
            publisher.publish_result(result)
        assert wait_until(lambda: {r["result_id"] for r in later} <= set(counter.ids), 10), (
            counter.ids
        )
        assert publisher.stats()["outbox_error"] is None
    finally:
        publisher.stop()
        box.close()
        if counter is not None:
            counter.close()


def test_a_full_disk_is_named_as_such(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        fill_to_the_limit(box)
        with pytest.raises(OutboxDiskFullError, match="disk is full.*Do not move or delete"):
            for i in range(100):
                box.put("t", os.urandom(2000), 1, message_id=f"m{i}")


# -- corruption ------------------------------------------------------------------------------------


def _cli_config(tmp_path: Path, model: Path, outbox: Path, broker_url: str) -> Path:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        state_dir = "{tmp_path / "state"}"
        [source]
        uri = "sim://?seed=0&walks=1"
        [model]
        path = "{model}"
        [mqtt]
        url = "{broker_url}"
        [outbox]
        path = "{outbox}"
    """)
    )
    return cfg


def test_corrupt_data_pages_give_the_named_error_and_exit_6(
    tmp_path, capsys, mosquitto, kiosk_model
):
    path = tmp_path / "o.db"
    fill_outbox(path)
    overwrite_pages(path, [10, 20])
    cfg = _cli_config(tmp_path, kiosk_model, path, mosquitto.url)
    assert main(["run", "--config", str(cfg), "--max-walks", "1"]) == 6
    err = capsys.readouterr().err
    assert "is corrupt" in err and "outbox export" in err and "Traceback" not in err


def test_index_only_corruption_is_found_at_start_and_export_saves_every_row(
    tmp_path, capsys, mosquitto, kiosk_model
):
    path = tmp_path / "o.db"
    ids = fill_outbox(path)
    overwrite_pages(path, [index_root_page(path)])
    cfg = _cli_config(tmp_path, kiosk_model, path, mosquitto.url)
    assert main(["run", "--config", str(cfg), "--max-walks", "1"]) == 6
    assert "quick check" in capsys.readouterr().err
    out = tmp_path / "saved.jsonl"
    assert main(["outbox", "export", "--path", str(path), "--out", str(out)]) == 0
    saved = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["message_id"] for row in saved] == ids
    assert (out.stat().st_mode & 0o077) == 0


def test_an_outbox_thread_that_fails_ends_the_run_with_an_error(
    tmp_path, mosquitto, kiosk_model, monkeypatch, caplog
):
    import edge.outbox.store

    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
    fill_outbox(cfg.outbox_path, rows=50)
    overwrite_pages(cfg.outbox_path, [index_root_page(cfg.outbox_path)])
    # the start-up check would refuse this file; skip it to reach the first read of a running kiosk
    monkeypatch.setattr(edge.outbox.store, "check_integrity", lambda conn, path: None)
    kiosk = run_kiosk(cfg, source=Corridor(walks=3, realtime=True))
    assert kiosk.exit_code == 1
    assert "the outbox thread stopped" in caplog.text and "corrupt" in caplog.text


def test_publisher_failure_names_the_corruption(tmp_path, mosquitto):
    path = tmp_path / "o.db"
    fill_outbox(path, rows=50)
    overwrite_pages(path, [index_root_page(path)])
    box = Outbox(path, check=False)
    publisher = Publisher(settings_for(mosquitto), box)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.failure() is not None, 10)
        assert "corrupt" in str(publisher.failure())
    finally:
        publisher.stop()
        box.close()
    with pytest.raises(OutboxCorruptError, match="quick check"):
        Outbox(path)


# -- a read-only state directory at start-up -------------------------------------------------------


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` cannot be written by this process: mode 0555 for a user; for root (which ignores modes)
    a read-only bind mount, or the immutable attribute where mounting is not allowed."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            yield
        finally:
            os.chmod(folder, 0o755)
        return
    if (
        subprocess.run(
            ["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True
        ).returncode
        == 0
    ):
        try:
            yield
        finally:
            subprocess.run(
                ["umount", "--lazy", str(folder)], check=True
            )  # lazy: an open file must not fail the test
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip(
            "running as root without the right to mount or set the immutable attribute: "
            "cannot make a folder read-only for root here"
        )
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_state_directory_is_named_read_only_not_corrupt(tmp_path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    path = state / "outbox.sqlite3"
    fill_outbox(path, rows=3)
    with read_only(state):
        with pytest.raises(OSError):
            (state / "probe").write_text("x")  # the fault is real
        with pytest.raises(OutboxReadOnlyError, match="read-only"):
            Outbox(path)
        assert main(["outbox", "requeue", "--path", str(path)]) == 6
    err = capsys.readouterr().err
    assert "read-only" in err and "Do not move the file" in err and "corrupt" not in err


def test_read_only_at_run_time_is_named(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        box._conn.execute("PRAGMA query_only = 1")
        with pytest.raises(OutboxReadOnlyError):
            box.put("t", b"x", 1)


def test_a_replaced_outbox_also_receives_the_retried_writes(tmp_path, mosquitto):
    first, second = Outbox(tmp_path / "a.db"), Outbox(tmp_path / "b.db")
    publisher = Publisher(settings_for(mosquitto), first)
    publisher.outbox = second  # as the pipeline benchmark wraps it
    assert publisher.held.outbox is second
    first.close()
    second.close()


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "256k"):
    """A real, tiny file system (tmpfs) at `folder`; needs root with the right to mount."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()}); needs root"
        )
    try:
        yield folder
    finally:
        subprocess.run(
            ["umount", "--lazy", str(folder)], check=True
        )  # lazy: an open file must not fail the test


def fill_disk(folder: Path) -> None:
    """Write until the file system says no space is left (ENOSPC)."""
    with (folder / "filler").open("wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"x" * 4096)


def test_a_full_disk_at_start_up_is_named_disk_full_not_corrupt(tmp_path):
    from edge.cli import EXIT_BROKER, exit_code_for

    with small_disk(tmp_path / "disk") as disk:
        (disk / "state").mkdir()
        fill_disk(disk)
        with pytest.raises(
            OutboxDiskFullError, match="disk is full.*Do not move or delete"
        ) as refused:
            Outbox(disk / "state" / "outbox.sqlite3")
    assert "corrupt" not in str(refused.value) and exit_code_for(refused.value) == EXIT_BROKER


# -- a disk full to the end of the run, broker connected ------------------------------------------


def fill_completely(box: Outbox) -> None:
    """The disk is full and so is every page: not even a small result fits anywhere.

    `fill_to_the_limit` alone leaves room in the pages the file already has (an empty outbox has
    a whole free page), so rows of shrinking size fill them; they are parked rows, parked too
    often to be put back automatically, so nothing of them is published or freed."""
    fill_to_the_limit(box)
    for size in (3000, 1000, 300, 100, 30, 1):
        with contextlib.suppress(sqlite3.OperationalError):
            while True:
                box._conn.execute(
                    "INSERT INTO outbox (topic, payload, qos, created, attempts, state) "
                    "VALUES ('filler', ?, 1, ?, 1000, 'parked')",
                    (
                        os.urandom(size),
                        time.time(),
                    ),  # recent: the privacy expiry must not free them
                )


def test_a_full_disk_while_connected_publishes_directly_and_loses_nothing(mosquitto, tmp_path):
    counter = ResultCounter(mosquitto)
    box = Outbox(tmp_path / "o.db")
    publisher = Publisher(settings_for(mosquitto), box)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.connected, 10)
        fill_completely(box)  # and it stays full: nothing is ever stored
        batch = results(5)
        rows = [publisher.publish_result(r) for r in batch]
        assert rows == [None] * 5, "the outbox should have refused every write on a full disk"
        assert wait_until(lambda: set(counter.ids) == {r["result_id"] for r in batch}, 15), (
            counter.ids
        )
        assert publisher.flush(10), publisher.stats()
        assert publisher.stats()["held_in_memory"] == 0
        assert publisher.counters["published_direct"] == 5
    finally:
        publisher.stop()
        box.close()
        counter.close()
    assert publisher.lost_total == 0
    assert len(counter.ids) == len(set(counter.ids)) == 5, "a result was published twice"


def test_results_lost_at_exit_are_counted_and_logged(mosquitto_factory, tmp_path, caplog):
    broker = mosquitto_factory()  # never started: nothing can be acknowledged
    box = Outbox(tmp_path / "o.db")
    publisher = Publisher(settings_for(broker), box)
    publisher.start()
    try:
        fill_completely(box)
        for result in results(5):
            publisher.publish_result(result)
        assert not publisher.flush(1)
    finally:
        publisher.stop()
        box.close()
    assert publisher.lost_total == 5
    assert "5 result(s) held in memory were neither stored" in caplog.text


@pytest.fixture
def full_outbox(monkeypatch):
    """The kiosk's own outbox (real SQLite) on a disk that is full from start to end of the run."""
    made: list[Outbox] = []
    original = Outbox.from_config.__func__

    def full(cls, cfg):
        box = original(cls, cfg)
        fill_completely(box)
        made.append(box)
        return box

    monkeypatch.setattr(Outbox, "from_config", classmethod(full))
    return made


def test_the_kiosk_delivers_every_result_while_connected_with_a_full_disk(
    tmp_path, mosquitto, kiosk_model, full_outbox
):
    sub = subscriber_for(mosquitto)
    try:
        cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
        kiosk = run_kiosk(cfg, source=Corridor(walks=5))
        assert sub.wait_for(5, timeout=10), f"{len(sub.results)} of 5 results reached the broker"
    finally:
        sub.stop()
    box = full_outbox[0]
    assert (
        box.acked_total == 0 and box.refused_total == 0
    )  # none went through the outbox; SQLite refused
    assert kiosk.exit_code == 0 and kiosk.results == 5
    assert len({r["result_id"] for r in sub.results}) == 5


def test_the_kiosk_exits_non_zero_naming_the_results_it_lost(
    tmp_path, mosquitto_factory, kiosk_model, full_outbox, caplog
):
    broker = mosquitto_factory()  # down for the whole run
    cfg = kiosk_config(tmp_path, broker.url, kiosk_model, **{"outbox.flush_seconds": 1.0})
    kiosk = run_kiosk(cfg, source=Corridor(walks=3))
    assert kiosk.results == 3
    assert kiosk.exit_code == 1
    assert "3 of 3 result(s) of this run were lost" in caplog.text


# -- a damaged row, an old format, a truncated file -----------------------------------------------


def damage_row(path: Path, n: int) -> None:
    """Random bytes inside row n's payload, in place: the page structure stays valid."""
    data = bytearray(path.read_bytes())
    at = data.index(b'{"n": %d, "pad": "' % n) + 30
    data[at : at + 16] = os.urandom(16)
    path.write_bytes(bytes(data))


def test_a_damaged_row_is_parked_as_corrupt_with_an_alarm_and_never_published(mosquitto, tmp_path):
    path = tmp_path / "o.db"
    ids = fill_outbox(path, rows=20)
    damage_row(path, 7)
    counter = ResultCounterAll(mosquitto, "gaitmil/v1/site-t/kiosk-t/result")
    box = Outbox(path)  # SQLite's quick check passes: it cannot see bytes inside a payload
    publisher = Publisher(settings_for(mosquitto), box)
    publisher.start()
    try:
        assert wait_until(lambda: len(counter.payloads) == 19 and box.depth == 0, 15), (
            len(counter.payloads),
            box.stats(),
        )
        stats = box.stats()
        assert stats["corrupt"] == 1 and "outbox_corrupt_row" in stats["alarms"]
        [row] = box.rows(state="corrupt")
        assert row.message_id == ids[7] and "checksum mismatch" in (row.reason or "")
        assert publisher.failure() is None
    finally:
        publisher.stop()
        box.close()
        counter.close()
    assert sorted(json.loads(p)["n"] for p in counter.payloads) == [n for n in range(20) if n != 7]
    with Outbox(path) as again:  # still parked after a restart, still never published
        assert again.stats()["corrupt"] == 1 and again.pending() == []


class ResultCounterAll:
    """Every payload that reached the broker on `topic` (the rows of fill_outbox are not results)."""

    def __init__(self, broker, topic: str) -> None:
        import threading

        import paho.mqtt.client as mqtt

        self.payloads: list[bytes] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda client, userdata, message: self.payloads.append(
            message.payload
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError(f"no SUBACK for {topic} within 10 s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


VERSION_1_SCHEMA = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT
);
CREATE INDEX outbox_state_id ON outbox (state, id);
CREATE TABLE outbox_clock (id INTEGER PRIMARY KEY CHECK (id = 1), wall REAL NOT NULL);
PRAGMA user_version = 1;
"""


def test_a_version_1_outbox_is_upgraded_and_its_rows_still_published(mosquitto, tmp_path):
    path = tmp_path / "o.db"
    batch = results(4)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(VERSION_1_SCHEMA)
        for r in batch:
            conn.execute(
                "INSERT INTO outbox (message_id, topic, payload, qos, created) VALUES (?, ?, ?, 1, ?)",
                (
                    r["result_id"],
                    "gaitmil/v1/site-t/kiosk-t/result",
                    json.dumps(r).encode(),
                    time.time(),
                ),
            )
        conn.commit()
    counter = ResultCounter(mosquitto)
    box = Outbox(path)
    publisher = Publisher(settings_for(mosquitto), box)
    try:
        assert all(row.checksum for row in box.rows())
        assert box._conn.execute("PRAGMA user_version").fetchone()[0] == 2
        publisher.start()
        assert wait_until(lambda: set(counter.ids) == {r["result_id"] for r in batch}, 15)
        assert wait_until(lambda: box.depth == 0, 5) and box.stats()["corrupt"] == 0
    finally:
        publisher.stop()
        box.close()
        counter.close()


def test_a_0_byte_outbox_is_refused_as_corrupt_with_what_to_do(
    tmp_path, capsys, mosquitto, kiosk_model
):
    path = tmp_path / "o.db"
    fill_outbox(path, rows=3)
    path.write_bytes(b"")  # truncated: a failed copy or restore
    with pytest.raises(OutboxCorruptError, match=r"empty \(0 bytes\).*move it aside"):
        Outbox(path)
    assert path.stat().st_size == 0, "the refusal must not turn the file into a new outbox"
    cfg = _cli_config(tmp_path, kiosk_model, path, mosquitto.url)
    assert main(["run", "--config", str(cfg), "--max-walks", "1"]) == 6
    err = capsys.readouterr().err
    assert "0 bytes" in err and "Traceback" not in err
    for command in (["list"], ["export", "--out", str(tmp_path / "saved.jsonl")]):
        assert main(["outbox", *command, "--path", str(path)]) == 6
        assert "is empty (0 bytes)" in capsys.readouterr().err


def test_the_kiosks_health_carries_the_corrupt_row_alarm(tmp_path, mosquitto, kiosk_model):
    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
    fill_outbox(cfg.outbox_path, rows=5)
    damage_row(cfg.outbox_path, 2)
    kiosk = run_kiosk(cfg, source=Corridor(walks=1))
    assert kiosk.exit_code == 0 and kiosk.results == 1
    alarms = kiosk.health.alarms
    assert (
        "outbox_corrupt_row" in alarms and "1 outbox row(s) damaged" in alarms["outbox_corrupt_row"]
    )
    with Outbox(cfg.outbox_path) as box:
        assert [r.state for r in box.rows()] == [
            "corrupt"
        ]  # the other rows and the result went out
