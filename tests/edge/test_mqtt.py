"""edge.publishing.publisher against a real mosquitto: results, status, health, session, outages and refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.outbox.store import Outbox
from edge.publishing.client import PublisherSettings
from edge.publishing.publisher import Publisher
from edge.publishing.subscriber import ResultSubscriber
from edge.publishing.topics import Topics, parse_session
from edge.screening.result import ResultContext, build_result, validate_result
from edge.screening.threshold import Threshold
from tests.edge.mqtt_support import broker_config, publisher_settings_for
from tests.edge.test_result import MODEL, make_prediction, make_walk

CONTEXT = ResultContext("site-t", "kiosk-t", Threshold(0.5), MODEL)


def results(count: int) -> list[dict]:
    walk = make_walk()
    return [build_result(walk, make_prediction(), CONTEXT) for _ in range(count)]


def settings_for(broker, **kw) -> PublisherSettings:
    """Publisher settings for a test broker (site-t/kiosk-t, a fresh client id, 1-2 s reconnects)."""
    return publisher_settings_for(broker, **kw)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Recorder:
    """A raw paho client recording (topic, payload, retain) for status/health checks."""

    def __init__(self, broker, topic: str = "gaitmil/#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, m.retain)
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        # what is published after this returns reaches the recorder live
        if not subscribed.wait(10):
            raise TimeoutError(
                f"no SUBACK for {topic} from {broker.host}:{broker.port} within 10 s"
            )

    def states(self, topic: str) -> list[tuple[str, bool]]:
        return [(json.loads(p)["state"], r) for t, p, r in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_results_arrive_in_order_and_leave_the_outbox(mosquitto, tmp_path, protocol):
    sub = ResultSubscriber(broker_config(mosquitto, protocol=protocol))
    sub.start()
    box = Outbox(tmp_path / "o.db")
    sent = results(20)
    publisher = Publisher(settings_for(mosquitto, protocol=protocol), box, model=MODEL.as_dict())
    publisher.start()
    try:
        for result in sent:
            publisher.publish_result(result)
        assert publisher.flush(20), publisher.stats()
        assert sub.wait_for(20, 20)
    finally:
        assert publisher.stop()
        sub.stop()
    assert [r["result_id"] for r in sub.results] == [r["result_id"] for r in sent]
    assert sub.results == sent
    assert box.depth == 0 and box.stats()["acked_total"] == 20
    stats = publisher.stats()
    assert stats["acked"] == 20 and stats["parked"] == 0 and stats["connects"] >= 1
    box.close()


def test_status_online_retained_then_stopped(mosquitto, tmp_path):
    topics = Topics.for_kiosk("gaitmil/v1", "site-t", "kiosk-t")
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(mosquitto), box, model=MODEL.as_dict())
        publisher.start()
        assert wait_until(lambda: publisher.connected)
        # `connected` flips just before `online` is sent, so a subscriber made now can still get it live;
        # once a first subscriber has seen it the broker holds it, and a later one must get it retained
        first = Recorder(mosquitto)
        try:
            assert wait_until(lambda: [s for s, _ in first.states(topics.status)] == ["online"])
        finally:
            first.close()
        late = Recorder(mosquitto)
        try:
            assert wait_until(lambda: late.states(topics.status) == [("online", True)])
            status = json.loads(late.messages[0][1])
            validate_result(status, schema="status")
            assert status["model"]["sha256"] == MODEL.sha256 and status["kiosk_id"] == "kiosk-t"
            assert publisher.publish_health({"frames_seen": 10, "outbox": box.stats()})
            assert wait_until(lambda: any(t == topics.health for t, _, _ in late.messages))
            health = json.loads(next(p for t, p, _ in late.messages if t == topics.health))
            assert health["frames_seen"] == 10 and health["schema"] == "gaitmil.health/1"
            assert publisher.stop()
            assert wait_until(lambda: late.states(topics.status)[-1:] == [("stopped", False)])
            validate_result(json.loads(late.messages[-1][1]), schema="status")
        finally:
            late.close()
    after = Recorder(mosquitto)
    try:  # the retained state after a clean exit is `stopped`, not the will
        assert wait_until(lambda: after.states(topics.status) == [("stopped", True)])
    finally:
        after.close()


def test_online_is_republished_after_a_broker_restart(mosquitto, tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(mosquitto), box)
        publisher.start()
        try:
            assert wait_until(lambda: publisher.connected)
            mosquitto.restart()
            assert wait_until(lambda: publisher.stats()["connects"] >= 2, 20)
        finally:
            publisher.stop()
    assert publisher.stats()["disconnects"] >= 1


KILLED_PUBLISHER = textwrap.dedent(
    """
    import sys, time
    from edge.publishing.publisher import Publisher
    from edge.outbox.store import Outbox
    from tests.edge.mqtt_support import Address, publisher_settings_for
    settings = publisher_settings_for(Address("127.0.0.1", int(sys.argv[1])), kiosk_id="kiosk-w", client_id="will-test")
    p = Publisher(settings, Outbox(sys.argv[2]))
    p.start()
    while not p.connected:
        time.sleep(0.02)
    print("connected", flush=True)
    time.sleep(60)
    """
)


def test_last_will_offline_when_the_kiosk_is_killed(mosquitto, tmp_path):
    topic = Topics.for_kiosk("gaitmil/v1", "site-t", "kiosk-w").status
    rec = Recorder(mosquitto)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_PUBLISHER, str(mosquitto.port), str(tmp_path / "o.db")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert child.stdout.readline().strip() == "connected"
        assert wait_until(lambda: rec.states(topic) == [("online", False)])
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        assert wait_until(lambda: rec.states(topic)[-1:] == [("offline", False)], 15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        rec.close()


def test_results_wait_in_the_outbox_while_the_broker_is_down(mosquitto_factory, tmp_path):
    broker = mosquitto_factory()  # not started: the kiosk boots before the broker
    box = Outbox(tmp_path / "o.db")
    publisher = Publisher(settings_for(broker), box)
    publisher.start()
    try:
        sent = results(8)
        for result in sent:
            publisher.publish_result(result)
        # the first refused attempt may take a while on a loaded machine: wait for it, not for a fixed time
        assert wait_until(
            lambda: "cannot connect" in (publisher.stats()["last_error"] or ""), 10
        ), publisher.stats()
        assert box.depth == 8 and not publisher.connected
        broker.start()
        sub = ResultSubscriber(broker_config(broker))
        sub.start()
        try:
            assert publisher.flush(30), publisher.stats()
            assert sub.wait_for(8, 10)
        finally:
            sub.stop()
        assert [r["result_id"] for r in sub.results] == [r["result_id"] for r in sent]
    finally:
        publisher.stop()
        box.close()


def test_restart_republishes_pending_rows(mosquitto, tmp_path):
    path = tmp_path / "o.db"
    sent = results(5)
    with Outbox(path) as box:  # a kiosk that stored results and died before publishing them
        for r in sent:
            box.put(
                Topics.for_kiosk("gaitmil/v1", "site-t", "kiosk-t").result,
                json.dumps(r).encode(),
                1,
                r["result_id"],
            )
    sub = ResultSubscriber(broker_config(mosquitto))
    sub.start()
    box = Outbox(path)
    publisher = Publisher(settings_for(mosquitto), box)
    publisher.start()
    try:
        assert publisher.flush(20)
        assert sub.wait_for(5, 10)
    finally:
        publisher.stop()
        sub.stop()
        box.close()
    assert [r["result_id"] for r in sub.results] == [r["result_id"] for r in sent]


ACL = """
acl_file {acl}
"""


def test_mqtt5_refusal_parks_the_row_and_others_flow(mosquitto_factory, tmp_path):
    acl = tmp_path / "acl"
    # anonymous clients may publish status and subscribe to session, not publish results of kiosk-x
    acl.write_text(
        "topic readwrite gaitmil/v1/site-t/kiosk-t/#\n"
        "topic readwrite gaitmil/v1/site-t/kiosk-x/status\n"
        "topic read gaitmil/v1/site-t/kiosk-x/session\n"
    )
    broker = mosquitto_factory(ACL.format(acl=acl))
    broker.start()
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(broker, kiosk_id="kiosk-x"), box)
        publisher.start()
        try:
            publisher.publish_result(results(1)[0])
            assert wait_until(lambda: publisher.stats()["parked"] == 1, 10), publisher.stats()
            parked = box.parked()
            assert len(parked) == 1 and "authori" in parked[0].reason.lower()
            assert box.depth == 0 and "outbox_parked" in box.alarms()
            assert publisher.flush(1)  # parked rows do not block the flush
        finally:
            publisher.stop()


def test_session_token_is_set_validated_used_once_and_expires(mosquitto, tmp_path):
    class Clock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    topics = Topics.for_kiosk("gaitmil/v1", "site-t", "kiosk-t")
    dashboard = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    dashboard.connect(mosquitto.host, mosquitto.port)
    dashboard.loop_start()
    # a retained token is delivered on every new subscription, i.e. after each reconnect: refused
    dashboard.publish(topics.session, b"retained_token_1", qos=1, retain=True).wait_for_publish()
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(
            settings_for(mosquitto, session_token_ttl_seconds=60), box, clock=clock
        )
        publisher.start()
        try:
            assert wait_until(lambda: publisher.stats()["session_rejected"] == 1)
            assert publisher.current_subject_token() is None
            # clear the retained one
            dashboard.publish(topics.session, b"", qos=1, retain=True).wait_for_publish()
            dashboard.publish(
                topics.session, json.dumps({"subject_token": "child_0001", "expires_in": 30}), qos=1
            ).wait_for_publish()
            assert wait_until(lambda: publisher.current_subject_token() == "child_0001")
            assert publisher.consume_subject_token() == "child_0001"
            assert publisher.current_subject_token() is None  # a token names one child
            for junk in [
                b"x",
                b"has space 123",
                b'{"subject_token": 5}',
                b'{"token": "abcdefgh"}',
                b"\xff\xfe",
                b"a" * 2000,
            ]:
                dashboard.publish(topics.session, junk, qos=1).wait_for_publish()
            assert wait_until(lambda: publisher.stats()["session_rejected"] == 7), publisher.stats()
            assert publisher.current_subject_token() is None
            dashboard.publish(topics.session, b"plain-token-2", qos=1).wait_for_publish()
            assert wait_until(lambda: publisher.current_subject_token() == "plain-token-2")
            clock.now += 61  # capped at the configured TTL
            assert publisher.current_subject_token() is None
        finally:
            publisher.stop()
            dashboard.disconnect()
            dashboard.loop_stop()


@pytest.mark.parametrize(
    "payload, token, expiry",
    [
        (b"abcdefgh", "abcdefgh", 160.0),
        (b'{"subject_token": "abcdefgh", "expires_in": 5}', "abcdefgh", 105.0),
        (b'{"subject_token": "abcdefgh", "expires_in": 500}', "abcdefgh", 160.0),
        (b"", None, 100.0),
        (b'{"subject_token": null}', None, 100.0),
    ],
)
def test_parse_session(payload, token, expiry):
    assert parse_session(payload, 100.0, 60.0) == (token, expiry)


@pytest.mark.parametrize(
    "payload",
    [b"short", b'{"subject_token": "abcdefgh", "expires_in": -1}', b"[1]", b"a b c d e f g h"],
)
def test_parse_session_rejects_junk(payload):
    with pytest.raises(ValueError):
        parse_session(payload, 0.0, 60.0)


def test_publisher_settings_from_config(tmp_path):
    from edge.config import load_config
    from edge.publishing.client import publisher_settings

    pw = tmp_path / "pw"
    pw.write_text("pa55\n")
    cfg = load_config(
        None,
        overrides={
            "mqtt.url": "mqtts://b.example",
            "mqtt.username": "k",
            "mqtt.password_file": str(pw),
            "kiosk.site_id": "s1",
            "mqtt.protocol": "3.1.1",
            "mqtt.allow_protocol_311": True,
        },
        env={},
    )
    s = publisher_settings(cfg.mqtt, cfg.kiosk, cfg.client_id)
    e = s.endpoint
    assert (e.host, e.port, e.tls, e.password, e.client_id) == (
        "b.example",
        8883,
        True,
        "pa55",
        "gaitmil-s1-kiosk-0",
    )
    # the validated sections themselves, not copies
    assert s.mqtt is cfg.mqtt and s.identity is cfg.kiosk
    assert s.topics.result == "gaitmil/v1/s1/kiosk-0/result"
    assert "pa55" not in repr(s)


def test_flush_times_out_while_disconnected(mosquitto_factory, tmp_path):
    broker = mosquitto_factory()
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(broker), box)
        publisher.start()
        try:
            publisher.publish_result(results(1)[0])
            started = time.monotonic()
            assert publisher.flush(0.5) is False
            assert time.monotonic() - started < 3
            assert box.depth == 1
        finally:
            publisher.stop()


def test_publish_from_many_threads_has_no_deadlock(mosquitto, tmp_path):
    sub = ResultSubscriber(broker_config(mosquitto))
    sub.start()
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(mosquitto, inflight=5), box)
        publisher.start()
        try:
            batches = [results(25) for _ in range(4)]
            threads = [
                threading.Thread(target=lambda b=b: [publisher.publish_result(r) for r in b])
                for b in batches
            ]
            for t in threads:
                t.start()
            for _ in range(20):
                publisher.publish_health({"n": 1})
            for t in threads:
                t.join(timeout=30)
            assert publisher.flush(30), publisher.stats()
            assert sub.wait_for(100, 10)
        finally:
            publisher.stop()
            sub.stop()
    assert sorted(r["result_id"] for r in sub.results) == sorted(
        r["result_id"] for b in batches for r in b
    )


def test_owner_thread_expires_old_undelivered_results(mosquitto_factory, tmp_path):
    now = [1_000_000.0]
    with Outbox(
        tmp_path / "o.db", expire_seconds=3600, clock=lambda: now[0], monotonic=lambda: now[0]
    ) as box:
        box.put("t", b"old", 1, message_id="old")
        now[0] += 3601
        broker = mosquitto_factory()  # down: the row could never be delivered
        publisher = Publisher(settings_for(broker), box)
        publisher.start()
        try:
            assert wait_until(lambda: box.stats()["expired_total"] == 1, 5)
            assert box.depth == 0
        finally:
            publisher.stop()
