"""`python -m central`: users, models, and the serve process killed mid-stream (nothing lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from central.cli import main
from central.db import open_store
from central.models import AuditEntry, Result
from tests.central.publisher import KioskPublisher
from tests.central.results import encode, make_result, register_sites, topic

ROOT = Path(__file__).resolve().parents[2]


def test_user_add_list_remove(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    pw = tmp_path / "pw"
    pw.write_text("a long enough password\n")
    assert (
        main(
            [
                "user",
                "--database",
                db,
                "add",
                "amy",
                "--role",
                "nurse",
                "--school",
                "school-a",
                "--school",
                "school-c",
                "--password-file",
                str(pw),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "user",
                "--database",
                db,
                "add",
                "ole",
                "--role",
                "officer",
                "--password-file",
                str(pw),
            ]
        )
        == 0
    )
    assert (
        main(
            ["user", "--database", db, "add", "bob", "--role", "nurse", "--password-file", str(pw)]
        )
        == 2
    )
    assert "needs at least one school" in capsys.readouterr().err
    short = tmp_path / "short"
    short.write_text("short\n")
    assert (
        main(
            [
                "user",
                "--database",
                db,
                "add",
                "kim",
                "--role",
                "technician",
                "--password-file",
                str(short),
            ]
        )
        == 2
    )
    assert "at least 10 characters" in capsys.readouterr().err
    assert main(["user", "--database", db, "list"]) == 0
    listed = capsys.readouterr().out
    assert "amy\tnurse\tschool-a,school-c" in listed and "ole\tofficer\t(all schools)" in listed
    assert main(["user", "--database", db, "remove", "amy"]) == 0
    assert main(["user", "--database", db, "remove", "amy"]) == 2
    capsys.readouterr()
    main(["user", "--database", db, "list"])
    assert "amy" not in capsys.readouterr().out
    engine, sessions = open_store(db)
    with sessions() as s:
        assert [a.action for a in s.scalars(select(AuditEntry))] == [
            "user_add",
            "user_add",
            "user_remove",
        ]
        stored = s.execute(select(func.count()).select_from(AuditEntry)).scalar()
    engine.dispose()
    assert stored == 3


def test_model_real_and_bad_database_url(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert main(["model", "--database", db, "real", "district-model-7", "--by", "dr-x"]) == 0
    main(["model", "--database", db, "list"])
    assert "district-model-7\treal data\tdr-x" in capsys.readouterr().out
    assert main(["migrate", "--database", "mysql://x/y"]) == 2
    assert "sqlite:///FILE and postgresql://" in capsys.readouterr().err


def start_serve(broker_url: str, db: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "central",
            "--log-level",
            "WARNING",
            "serve",
            "--broker",
            broker_url,
            "--database",
            db,
            "--no-web",
            "--client-id",
            "central-kill-test",
        ],
        cwd=ROOT,
        env=env,
    )


def stored_ids(sessions) -> set[str]:
    with sessions() as s:
        return set(s.scalars(select(Result.result_id)))


def count(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(Result))


def test_serve_stops_cleanly_on_sigterm_after_storing_what_it_received(mosquitto, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine, sessions = open_store(db)
    register_sites(sessions)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "central", "serve", "--broker", mosquitto.url]
    argv += ["--database", db, "--no-web", "--client-id", "central-term-test"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    pub = KioskPublisher(mosquitto.host, mosquitto.port)
    try:
        deadline = time.monotonic() + 30
        while count(sessions) == 0 and time.monotonic() < deadline:
            pub.publish(topic("result"), encode(make_result()))
            time.sleep(0.1)
        assert count(sessions) > 0, "the ingest never stored a result"
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    finally:
        pub.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        engine.dispose()
    assert proc.returncode == 0, output
    assert "central ingest stopped: " in output


def test_serve_killed_mid_stream_loses_and_duplicates_nothing(mosquitto, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    engine, sessions = open_store(db)
    register_sites(sessions)
    proc = start_serve(mosquitto.url, db)
    pub = KioskPublisher(mosquitto.host, mosquitto.port)
    sent, probes = [], set()
    try:
        deadline = time.monotonic() + 30
        while count(sessions) == 0 and time.monotonic() < deadline:
            # probes until the first process has subscribed (before that, the broker has no session to queue for)
            r = make_result()
            pub.publish(topic("result"), encode(r))
            probes.add(r["result_id"])
            time.sleep(0.1)
        for _ in range(100):
            r = make_result()
            pub.publish(topic("result"), encode(r))
            sent.append(r)
        proc.send_signal(
            signal.SIGKILL
        )  # no clean shutdown: whatever was not committed is not acknowledged
        proc.wait(10)
        for _ in range(50):
            r = make_result()
            pub.publish(topic("result"), encode(r))
            sent.append(r)
        proc = start_serve(mosquitto.url, db)
        deadline = time.monotonic() + 40
        expected = {r["result_id"] for r in sent}
        while not expected <= stored_ids(sessions) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        with sessions() as s:
            stored = list(s.scalars(select(Result.result_id)))
        assert len(stored) == len(set(stored))  # 0 duplicated
        assert expected - set(stored) == set()  # 0 lost
        assert set(stored) - expected <= probes
    finally:
        pub.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        engine.dispose()
