"""Issue 23's measurements, replayed through a real mosquitto into the ingest, on SQLite and PostgreSQL.

Before: one 200 KB nested array stopped every later result (0 of 10 stored);
a NaN probability retried forever on PostgreSQL (0 of 10). Now each poison
message is quarantined and acknowledged, and the results behind it are stored.
"""

from __future__ import annotations

import random
import time

import pytest
from sqlalchemy import func, select

from benchmarks.hostile import HOSTILE_KINDS, hostile, mix
from central.ingest import Ingest
from central.models import Quarantine, Result
from central.mqtt_link import BrokerSettings
from tests.central.publisher import KioskPublisher
from tests.central.results import PREFIX, encode, make_result, topic


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request):
    return request.getfixturevalue("store" if request.param == "sqlite" else "pg_store")


def wait_for(sessions, model, n: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as s:
            got = int(s.scalar(select(func.count()).select_from(model)))
        if got >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.parametrize(
    "poison",
    [
        b"[" * 100_000 + b"]" * 100_000,  # the 200 KB nested array
        encode(make_result()).replace(b'"p_not_negative":0.7', b'"p_not_negative":NaN'),
        encode(make_result()).replace(b'"threshold":0.5', b'"threshold":Infinity'),
    ],
    ids=["nested", "nan", "infinity"],
)
def test_a_poison_message_then_ten_results_all_ten_stored(mosquitto, db, poison):
    _, sessions = db
    ingest = Ingest(BrokerSettings(url=mosquitto.url, client_id="central-poison"), sessions)
    ingest.start()
    pub = KioskPublisher(mosquitto.host, mosquitto.port)
    try:
        pub.publish(topic("result"), poison)
        results = [make_result() for _ in range(10)]
        for r in results:
            pub.publish(topic("result"), encode(r))
        assert wait_for(sessions, Result, 10) == 10
        assert wait_for(sessions, Quarantine, 1) == 1
        assert ingest.counts["writer_restarts"] == 0
    finally:
        pub.close()
        ingest.stop()
    # acknowledged: a restarted ingest on the same session gets nothing again
    again = Ingest(BrokerSettings(url=mosquitto.url, client_id="central-poison"), sessions)
    again.start()
    time.sleep(1.0)
    again.stop()
    assert again.counts["received"] == 0
    with sessions() as s:
        assert s.scalar(select(Quarantine.kind)) == "contract"


def test_a_shuffled_hostile_mix_through_mosquitto(mosquitto, db):
    _, sessions = db
    messages = mix(30, 2 * len(HOSTILE_KINDS), PREFIX, "school-a", "kiosk-1", seed=3)
    ingest = Ingest(BrokerSettings(url=mosquitto.url, client_id="central-mix"), sessions)
    ingest.start()
    pub = KioskPublisher(mosquitto.host, mosquitto.port)
    try:
        for m in messages:
            pub.publish(m.topic, m.payload)
        hostile_count = sum(1 for m in messages if m.expect != "valid")
        assert wait_for(sessions, Quarantine, hostile_count) == hostile_count
        assert wait_for(sessions, Result, 30) == 30
        probe = hostile("nested", PREFIX, "school-a", "kiosk-1", random.Random(1))
        pub.publish(probe.topic, probe.payload)
        late = make_result()
        pub.publish(topic("result"), encode(late))  # alive after it all
        assert wait_for(sessions, Result, 31) == 31
    finally:
        pub.close()
        ingest.stop()
    with sessions() as s:
        stored = list(s.scalars(select(Result.result_id)))
        kinds = sorted(k for k in s.scalars(select(Quarantine.kind)))
    assert len(stored) == len(set(stored)) == 31
    assert set(stored) == {m.result_id for m in messages if m.result_id} | {late["result_id"]}
    expected = sorted([m.expect for m in messages if m.expect != "valid"] + ["contract"])
    assert kinds == expected
