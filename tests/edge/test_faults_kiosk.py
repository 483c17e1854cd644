"""Faults during a whole kiosk run (real ONNX Runtime, real mosquitto, real SQLite outbox).

What is checked is what a separate subscriber receives (results and health messages)
and what is left in the outbox file after the run.
"""

from __future__ import annotations

import json
import sqlite3
import threading

import paho.mqtt.client as mqtt

from edge.service import Kiosk, ServiceOptions
from edge.wiring import build_components
from tests.edge.kiosk_support import (
    Corridor,
    kiosk_config,
    subscriber_for,
)
from tests.edge.test_mqtt import wait_until

SESSION = "gaitmil/v1/test-site/test-kiosk/session"
HEALTH = "gaitmil/v1/test-site/test-kiosk/health"


class Listener:
    """A raw paho client: health messages of the test kiosk, and a way to write its session topic."""

    def __init__(self, broker) -> None:
        self.health: list[dict] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.health.append(json.loads(m.payload))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(HEALTH, qos=0)
        self.client.loop_start()
        if not subscribed.wait(10):  # health published after this returns must reach the listener
            raise TimeoutError(f"no SUBACK for {HEALTH} within 10 s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start(cfg, walks: int):
    source = Corridor(walks=walks, realtime=True)
    kiosk = Kiosk(
        cfg,
        components=build_components(cfg, source=source),
        options=ServiceOptions(install_signals=False),
    )
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(kiosk.run()))
    thread.start()
    return kiosk, thread, codes


def rows_left(cfg) -> int:
    with sqlite3.connect(cfg.outbox_path) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def test_nested_json_on_the_session_topic_during_a_run_leaves_nothing_undelivered(
    tmp_path, mosquitto, kiosk_model
):
    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
    sub = subscriber_for(mosquitto)
    listener = Listener(mosquitto)
    kiosk, thread, codes = start(cfg, walks=3)
    try:
        online = "gaitmil/v1/test-site/test-kiosk/status"
        assert wait_until(lambda: sub.statuses.get(online, {}).get("state") == "online", 20)
        wait_until(lambda: False, 0.5)  # subscribed to its session topic
        payload = b'{"subject_token":' + b"[" * 1000
        listener.client.publish(SESSION, payload, qos=1).wait_for_publish(5)
        thread.join(timeout=90)
        assert not thread.is_alive() and codes == [0]
        assert sub.wait_for(3, timeout=10)
    finally:
        sub.stop()
        listener.close()
    assert len({r["result_id"] for r in sub.results}) == 3
    assert rows_left(cfg) == 0, "acknowledgements were not read: rows left in the outbox"
    assert listener.health and listener.health[-1]["mqtt"]["session_rejected"] == 1


def test_a_window_of_refused_writes_mid_run_loses_no_result_and_the_alarm_clears(
    tmp_path, mosquitto, kiosk_model
):
    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
    sub = subscriber_for(mosquitto)
    listener = Listener(mosquitto)
    kiosk, thread, codes = start(cfg, walks=4)
    try:
        assert wait_until(lambda: kiosk._components.publisher is not None, 30)
        box = kiosk._components.publisher.outbox
        # every write fails from now on, as after the kernel remounts a failing disk read-only (a full
        # disk is the publisher-level test: here deletes of delivered rows would free pages to reuse)
        box._conn.execute("PRAGMA query_only = 1")

        def alarmed() -> bool:
            # the broker is up: results the outbox refuses go out directly and leave memory at once,
            # so the alarm, not the memory gauge, is what shows the outbox cannot store
            return any(
                h["mqtt"]["published_direct"] >= 1 and "result_not_stored" in h["alarms"]
                for h in listener.health
            )

        assert wait_until(alarmed, 60), listener.health[-1:]
        seen = len(listener.health)
        box._conn.execute("PRAGMA query_only = 0")  # writable again

        def cleared() -> bool:  # the next result stored in the outbox clears it
            return any(
                h.get("results_in_memory") == 0 and "result_not_stored" not in h["alarms"]
                for h in listener.health[seen:]
            )

        assert wait_until(cleared, 30), listener.health[-1:]
        thread.join(timeout=90)
        assert not thread.is_alive() and codes == [0]
        assert sub.wait_for(4, timeout=10)
    finally:
        sub.stop()
        listener.close()
    assert len({r["result_id"] for r in sub.results}) == 4
    assert kiosk.health.get("results_refused") == 0 and kiosk.health.get("walks") == 4
    assert rows_left(cfg) == 0
