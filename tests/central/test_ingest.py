"""The ingest against a real mosquitto (persistence on): nothing lost, nothing duplicated."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from sqlalchemy import func, select

from central.errors import CentralError
from central.ingest import Ingest
from central.models import Kiosk, Quarantine, Result
from central.mqtt_link import BrokerSettings
from tests.central.publisher import KioskPublisher
from tests.central.results import encode, make_result, make_status, topic


def wait_rows(sessions, model, count: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as s:
            n = s.scalar(select(func.count()).select_from(model))
        if n >= count or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def test_results_status_and_junk_arrive_in_the_store(mosquitto, store):
    _, sessions = store
    ingest = Ingest(BrokerSettings(url=mosquitto.url, client_id="central-test"), sessions)
    ingest.start()
    pub = KioskPublisher(mosquitto.host, mosquitto.port)
    try:
        pub.publish(topic("status"), encode(make_status()), retain=True)
        results = [make_result(p=0.2 + i * 0.1) for i in range(5)]
        for r in results:
            pub.publish(topic("result"), encode(r))
        pub.publish(topic("result"), encode(results[0]))  # a kiosk's republish after a restart
        pub.publish(topic("result"), b'{"schema": "gaitmil.result/1"}')
        assert wait_rows(sessions, Result, 5) == 5
        assert wait_rows(sessions, Quarantine, 1) == 1
        deadline = time.monotonic() + 10
        while ingest.counts["duplicate"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ingest.counts["duplicate"] == 1
        with sessions() as s:
            assert {r.result_id for r in s.scalars(select(Result))} == {
                r["result_id"] for r in results
            }
            assert s.get(Kiosk, ("school-a", "kiosk-1")).state == "online"
    finally:
        pub.close()
        ingest.stop()


def test_nothing_lost_or_duplicated_across_broker_and_ingest_restarts(mosquitto, store):
    _, sessions = store
    settings = BrokerSettings(url=mosquitto.url, client_id="central-restarts")
    ingest = Ingest(settings, sessions)
    ingest.start()
    sent: list[dict] = []

    def publish(n: int) -> None:
        pub = KioskPublisher(mosquitto.host, mosquitto.port, client_id=f"kiosk-{len(sent)}")
        for _ in range(n):
            r = make_result()
            pub.publish(topic("result"), encode(r))
            sent.append(r)
        pub.close()

    publish(10)
    assert wait_rows(sessions, Result, 10) == 10
    ingest.stop()  # the ingest is away: the broker queues for its persistent session
    publish(15)
    mosquitto.restart()  # ... and the broker restarts meanwhile (persistence on)
    publish(5)
    ingest = Ingest(settings, sessions)
    ingest.start()
    mosquitto.restart()  # a broker outage while the ingest runs
    publish(10)
    try:
        assert wait_rows(sessions, Result, len(sent), timeout=40) == len(sent)
        time.sleep(0.5)
        with sessions() as s:
            stored = [r.result_id for r in s.scalars(select(Result))]
        assert len(stored) == len(set(stored)) == 40
        assert set(stored) == {r["result_id"] for r in sent}
    finally:
        ingest.stop()


def test_a_refused_login_names_the_credential_flags(mosquitto_factory, store, tmp_path):
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.fail("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    users = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(users), "central", "right"], check=True, timeout=30)
    broker = mosquitto_factory(
        f"password_file {users}\nallow_anonymous false\n", name="auth-broker"
    )
    broker.start()
    secret = tmp_path / "central.password"
    secret.write_text("wrong\n")
    _, sessions = store
    for protocol in ("5", "3.1.1"):
        settings = BrokerSettings(
            url=broker.url,
            protocol=protocol,
            client_id=f"central-auth-{protocol}",
            username="central",
            password_file=secret,
        )
        ingest = Ingest(settings, sessions)
        try:
            with pytest.raises(
                CentralError, match="(Bad user name or password|Not authorized); check --mqtt-user"
            ):
                ingest.start(wait=3)
        finally:
            ingest.stop(drain_s=0)
