"""No result is lost: a broker outage mid-run, and a dashboard that was away (persistent sessions)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from edge.outbox.store import Outbox
from edge.publishing.publisher import Publisher
from edge.publishing.subscriber import ResultSubscriber
from tests.edge.mqtt_support import broker_config
from tests.edge.test_mqtt import results, settings_for, wait_until


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_persistent_subscriber_gets_results_published_while_away(mosquitto, tmp_path, protocol):
    sub_config = broker_config(mosquitto, protocol=protocol, client_id=f"dashboard-{protocol}")
    first = ResultSubscriber(sub_config, persistent=True)
    first.start()
    first.stop()  # the broker now holds the session and queues QoS 1 results for it
    sent = results(10)
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(mosquitto, protocol=protocol), box)
        publisher.start()
        try:
            for r in sent:
                publisher.publish_result(r)
            assert publisher.flush(20)
        finally:
            publisher.stop()
    again = ResultSubscriber(sub_config, persistent=True)
    again.start()
    try:
        assert again.wait_for(10, 15)
    finally:
        again.stop()
    assert [r["result_id"] for r in again.results] == [r["result_id"] for r in sent]


@pytest.mark.slow
def test_broker_down_for_30_seconds_mid_run_loses_nothing(mosquitto, tmp_path):
    sub = ResultSubscriber(broker_config(mosquitto, client_id="dashboard-outage"), persistent=True)
    sub.start()
    box = Outbox(tmp_path / "o.db")
    publisher = Publisher(settings_for(mosquitto, reconnect_max_delay=2), box)
    publisher.start()
    sent: list[dict] = []
    stop = threading.Event()

    def kiosk() -> None:  # one result every 0.25 s, whatever the broker does
        while not stop.is_set():
            result = results(1)[0]
            publisher.publish_result(result)
            sent.append(result)
            time.sleep(0.25)

    producer = threading.Thread(target=kiosk)
    producer.start()
    try:
        assert wait_until(lambda: len(sub.results) >= 10, 20)
        mosquitto.stop()
        outage_started = len(sent)
        time.sleep(30)
        assert box.depth > 0  # results piled up in the outbox during the outage
        during = len(sent) - outage_started
        mosquitto.start()
        assert wait_until(lambda: publisher.connected, 20)
        time.sleep(3)
        stop.set()
        producer.join(timeout=10)
        assert publisher.flush(60), publisher.stats()
        assert sub.wait_for(len(sent), 60), f"{len(sub.results)} of {len(sent)}"
    finally:
        stop.set()
        producer.join(timeout=10)
        publisher.stop()
        sub.stop()
        box.close()
    assert during >= 60  # ~120 at one per 0.25 s; slack for a loaded CI machine
    assert {r["result_id"] for r in sub.results} == {r["result_id"] for r in sent}
    assert len(sub.results) == len(sent)  # unique after de-duplication
    print(
        f"outage test: {len(sent)} results, {during} during the outage, {sub.duplicates} duplicates dropped"
    )


KIOSK = textwrap.dedent(
    """
    import sys, time
    from edge.publishing.publisher import Publisher
    from edge.outbox.store import Outbox
    from tests.edge.mqtt_support import Address, publisher_settings_for
    from tests.edge.test_mqtt import results
    settings = publisher_settings_for(Address("127.0.0.1", int(sys.argv[1])), client_id="kiosk-killed",
                                      reconnect_min_delay=1, reconnect_max_delay=1)
    p = Publisher(settings, Outbox(sys.argv[2]))
    p.start()
    for r in results(12):
        p.publish_result(r)
        print(r["result_id"], flush=True)  # after the outbox commit
    time.sleep(60)
    """
)


def test_kiosk_killed_while_results_wait_then_restarted_delivers_all(mosquitto_factory, tmp_path):
    broker = mosquitto_factory()  # down while the kiosk runs
    path = tmp_path / "o.db"
    child = subprocess.Popen(
        [sys.executable, "-c", KIOSK, str(broker.port), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        ids = [child.stdout.readline().strip() for _ in range(12)]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert len(set(ids)) == 12 and all(ids)
    broker.start()
    sub = ResultSubscriber(broker_config(broker))
    sub.start()
    with Outbox(path) as box:
        assert box.depth == 12
        publisher = Publisher(settings_for(broker, client_id="kiosk-killed"), box)
        publisher.start()
        try:
            assert publisher.flush(20), publisher.stats()
            assert sub.wait_for(12, 10)
        finally:
            publisher.stop()
            sub.stop()
    assert [r["result_id"] for r in sub.results] == ids
