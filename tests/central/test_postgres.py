"""The same store on a real PostgreSQL server: migrations, idempotency under concurrent workers,
and two ingest workers sharing a $share subscription on mosquitto."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from central.ingest import Ingest
from central.models import Base, FollowUp, Quarantine, Result
from central.mqtt_link import BrokerSettings
from central.store import Stored, store_message
from tests.central.publisher import KioskPublisher
from tests.central.results import encode, make_result, topic


def test_migrations_create_exactly_the_models_on_postgres(pg_store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine, _ = pg_store
    assert engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_racing_workers_store_one_row_per_result_id(pg_store):
    _, sessions = pg_store
    results = [make_result(p=0.9) for _ in range(40)]
    outcomes: list[Stored] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for r in results:  # every worker stores every result: 3 of 4 must see a duplicate
            with sessions() as s, s.begin():
                kind = store_message(s, topic("result"), encode(r)).kind
            with lock:
                outcomes.append(kind)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcomes.count(Stored.NEW) == 40 and outcomes.count(Stored.DUPLICATE) == 120
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Result)) == 40
        assert s.scalar(select(func.count()).select_from(FollowUp)) == 40


def test_quarantine_on_postgres(pg_store):
    _, sessions = pg_store
    with sessions() as s, s.begin():
        assert store_message(s, topic("result"), b"\xff\xfe").kind is Stored.QUARANTINED
    with sessions() as s:
        row = s.scalar(select(Quarantine))
        assert row.payload == b"\xff\xfe" and "not UTF-8 JSON" in row.reason


def test_two_ingest_workers_share_the_load_into_postgres(mosquitto, pg_store):
    _, sessions = pg_store
    workers = [
        Ingest(
            BrokerSettings(url=mosquitto.url, client_id=f"central-w{i}", share_group="central"),
            sessions,
        )
        for i in range(2)
    ]
    for w in workers:
        w.start()
    pubs = [
        KioskPublisher(mosquitto.host, mosquitto.port, client_id=f"kiosk-{i}") for i in range(4)
    ]
    sent = []
    try:
        for _ in range(50):
            for i, pub in enumerate(pubs):
                r = make_result(kiosk=f"kiosk-{i}")
                pub.publish(topic("result", kiosk=f"kiosk-{i}"), encode(r))
                sent.append(r)
        pubs[0].publish(
            topic("result", kiosk="kiosk-0"), encode(sent[0])
        )  # a republished duplicate
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sessions() as s:
                if s.scalar(select(func.count()).select_from(Result)) >= len(sent):
                    break
            time.sleep(0.1)
        time.sleep(0.5)
        with sessions() as s:
            stored = list(s.scalars(select(Result.result_id)))
        assert len(stored) == len(set(stored)) == len(sent)
        assert set(stored) == {r["result_id"] for r in sent}
        shares = [w.counts["new"] for w in workers]
        assert sum(shares) == len(sent) and min(shares) > 0, f"one worker got everything: {shares}"
    finally:
        for pub in pubs:
            pub.close()
        for w in workers:
            w.stop()
