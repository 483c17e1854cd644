"""Issue 23: known sites, purge, retention, the demo's own prefix, and serve's port checked first."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text, update

from central.cli import main
from central.db import open_store
from central.models import AuditEntry, FollowUp, Quarantine, Result
from central.retention import Retention
from central.serve import PortInUse, bind_listen
from central.store import Stored, store_message
from tests.central.results import days_ago, encode, make_result, topic


def count(sessions, model) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_site_add_list_and_unknown_sites_quarantined(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert main(["site", "--database", db, "add", "school-x"]) == 0
    assert main(["site", "--database", db, "add", "bench-1", "--test"]) == 0
    assert main(["site", "--database", db, "add", "school-x"]) == 2
    assert "already known" in capsys.readouterr().err
    assert main(["site", "--database", db, "add", "bad site!"]) == 2
    main(["site", "--database", db, "list"])
    listed = capsys.readouterr().out
    assert "bench-1\ttest\tcli" in listed and "school-x\treal\tcli" in listed
    engine, sessions = open_store(db)
    try:
        with sessions() as s, s.begin():
            ok = store_message(s, topic("result", "school-x"), encode(make_result("school-x")))
            stranger = store_message(
                s, topic("result", "school-y"), encode(make_result("school-y"))
            )
        assert ok.kind is Stored.NEW and stranger.quarantine_kind == "unknown_site"
        with sessions() as s:
            assert [a.action for a in s.scalars(select(AuditEntry))] == ["site_add", "site_add"]
    finally:
        engine.dispose()


def seed_two_sites(sessions) -> tuple[list[dict], list[dict]]:
    a = [make_result("school-a", p=0.9, when=days_ago(d)) for d in (1, 10, 40)]
    b = [make_result("school-b", p=0.9) for _ in range(2)]
    with sessions() as s, s.begin():
        for r in a + b:
            assert store_message(s, topic("result", r["site_id"]), encode(r)).kind is Stored.NEW
    return a, b


def test_purge_a_site_before_a_date_with_its_follow_ups_and_an_audit_entry(tmp_path, capsys):
    from tests.central.results import register_sites

    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine, sessions = open_store(db)
    register_sites(sessions)
    try:
        a, b = seed_two_sites(sessions)
        before = (datetime.now(timezone.utc) - timedelta(days=5)).date().isoformat()
        assert main(["purge", "--database", db, "--site", "school-a", "--before", before]) == 0
        assert "deleted 2 result(s) of site school-a" in capsys.readouterr().out
        with sessions() as s:
            left = set(s.scalars(select(Result.result_id)))
        assert left == {a[0]["result_id"]} | {r["result_id"] for r in b}
        assert count(sessions, FollowUp) == 3
        assert main(["purge", "--database", db, "--site", "school-b"]) == 0
        assert count(sessions, Result) == 1 and count(sessions, FollowUp) == 1
        with sessions() as s:
            purges = [
                (e.action, e.site_id, e.detail)
                for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "purge"))
            ]
        assert purges[0][:2] == ("purge", "school-a") and purges[0][2].startswith(
            "2 results before"
        )
        assert purges[1] == ("purge", "school-b", "2 results")
        with pytest.raises(SystemExit):  # neither --site nor --older-than-days: argparse refuses
            main(["purge", "--database", db, "--before", before])
    finally:
        engine.dispose()


def test_retention_deletes_old_records_daily_and_survives_a_failed_run(store):
    _, sessions = store
    a, b = seed_two_sites(sessions)
    with sessions() as s, s.begin():  # received long ago (received_at is what retention reads)
        s.execute(
            update(Result)
            .where(Result.result_id == a[2]["result_id"])
            .values(received_at=days_ago(40))
        )
    timer = Retention(sessions, days=30, interval_s=0.2)
    timer.start()
    try:
        deadline = time.monotonic() + 10
        while timer.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert timer.runs >= 2 and timer.purged == 1 and timer.last_error is None
        assert count(sessions, Result) == 4
    finally:
        timer.stop()
    broken = Retention(sessions, days=-1, interval_s=0.1)  # every run fails: the thread lives on
    broken.start()
    time.sleep(0.3)
    assert broken._thread is not None and broken._thread.is_alive() and broken.last_error
    broken.stop()
    with sessions() as s:
        assert s.scalar(select(AuditEntry.action).where(AuditEntry.action == "retention_purge"))


def test_cli_purge_older_than_days(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert main(["purge", "--database", db, "--older-than-days", "30"]) == 0
    assert "deleted 0 result(s) older than 30 days" in capsys.readouterr().out


def test_the_demo_refuses_the_production_prefix_unless_told(capsys):
    assert main(["demo", "--topic-prefix", "gaitmil/v1", "--seconds", "1"]) == 2
    assert "--allow-production-prefix" in capsys.readouterr().err


def test_serve_fails_fast_naming_a_taken_port(tmp_path, mosquitto):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(PortInUse, match="already in use"):
            bind_listen("127.0.0.1", port)
        db = tmp_path / "c.db"
        started = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "central",
                "serve",
                "--broker",
                mosquitto.url,
                "--database",
                f"sqlite:///{db}",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2
        assert f"--listen 127.0.0.1:{port} is already in use" in proc.stderr
        assert time.monotonic() - started < 30
        assert not db.exists()  # nothing started: not even the store was opened
    finally:
        taken.close()


def test_quarantine_rows_have_a_kind(store):
    _, sessions = store
    with sessions() as s, s.begin():
        store_message(s, topic("result"), b"{")
    with sessions() as s:
        assert s.scalar(select(Quarantine.kind)) == "contract"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0002_downgrades_and_upgrades_keeping_known_sites(request, tmp_path, backend):
    from alembic import command

    from central.db import _alembic_config, make_engine, migrate
    from central.models import Site

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    engine = make_engine(url)
    try:
        migrate(engine, "0001")
        with engine.begin() as c:  # a result stored before the upgrade
            c.execute(
                text(
                    "INSERT INTO results (result_id, walk_id, site_id, kiosk_id, time, received_at,"
                    " outcome, threshold, model_id, runner, precision, payload) VALUES ('r1', 'w',"
                    " 'old-school', 'k', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'retake', 0.5, 'm',"
                    " 'onnxruntime', 'fp32', '{}')"
                )
            )
        migrate(engine)
        upgraded, sessions = open_store(url)
        with sessions() as s:
            assert s.get(Site, "old-school") is not None  # known: not quarantined after upgrade
        upgraded.dispose()
        cfg = _alembic_config(engine)
        with engine.begin() as c:
            cfg.attributes["connection"] = c
            command.downgrade(cfg, "0001")
        migrate(engine)
    finally:
        engine.dispose()
