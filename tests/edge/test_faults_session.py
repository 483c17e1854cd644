"""Hostile messages on the session topic, against a real mosquitto: delivery must go on.

Every test counts what an independent paho subscriber receives on the result topic.
"""

from __future__ import annotations

import json
import logging
import threading

import paho.mqtt.client as mqtt
import pytest

from edge.outbox.store import Outbox
from edge.publishing.publisher import Publisher
from edge.screening.result import ResultError, build_result, validate_result
from tests.edge.test_mqtt import CONTEXT, results, settings_for, wait_until
from tests.edge.test_result import make_prediction, make_walk

SESSION = "gaitmil/v1/site-t/kiosk-t/session"
RESULT = "gaitmil/v1/site-t/kiosk-t/result"


class ResultCounter:
    """A separate paho client: the result ids that reached the broker, in order."""

    def __init__(self, broker) -> None:
        self.ids: list[str] = []
        self.tokens: list[str | None] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(RESULT, qos=1)
        self.client.loop_start()
        # without the SUBACK a result published right after this returns could be missed
        if not subscribed.wait(10):
            raise TimeoutError(
                f"no SUBACK for {RESULT} from {broker.host}:{broker.port} within 10 s"
            )

    def _on_message(self, client, userdata, message) -> None:
        body = json.loads(message.payload)
        self.ids.append(body["result_id"])
        self.tokens.append(body.get("subject_token"))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def dashboard(broker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def send(client: mqtt.Client, payload: bytes | str) -> None:
    client.publish(SESSION, payload, qos=1).wait_for_publish(5)


@pytest.fixture
def running(mosquitto, tmp_path):
    counter = ResultCounter(mosquitto)
    box = Outbox(tmp_path / "o.db")
    publisher = Publisher(settings_for(mosquitto), box)
    publisher.start()
    attacker = dashboard(mosquitto)
    assert wait_until(lambda: publisher.connected, 10)
    # subscribed once a token sent now arrives; then clear it again
    assert wait_until(
        lambda: send(attacker, b"probe-token-1") or publisher.counters["session_tokens"] > 0, 10
    )
    send(attacker, b"")
    assert wait_until(lambda: publisher.current_subject_token() is None, 5)
    try:
        yield publisher, box, counter, attacker
    finally:
        attacker.loop_stop()
        attacker.disconnect()
        publisher.stop()
        box.close()
        counter.close()


def test_deeply_nested_json_under_the_size_cap_does_not_stop_delivery(running):
    publisher, box, counter, attacker = running
    payload = b'{"subject_token":' + b"[" * 1000  # 1,017 bytes: RecursionError in the JSON decoder
    assert len(payload) <= 1024
    send(attacker, payload)
    assert wait_until(lambda: publisher.counters["session_rejected"] == 1, 5), publisher.stats()
    batch = results(32)
    for result in batch:
        publisher.publish_result(result)
    assert wait_until(lambda: len(set(counter.ids)) == 32, 15), (
        f"{len(set(counter.ids))} of 32 reached the broker"
    )
    assert set(counter.ids) == {r["result_id"] for r in batch}
    assert wait_until(lambda: box.depth == 0, 5)
    assert publisher.connected and publisher.counters["callback_errors"] == 0


@pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning"
)  # the simulated bug
def test_a_dead_network_thread_is_replaced_and_delivery_resumes(running):
    publisher, box, counter, attacker = running

    # a bug in a callback (simulated: an unguarded handler) ends paho's network thread
    def broken(client, userdata, message):
        raise RuntimeError("simulated bug in a paho callback")

    publisher.delivery.client.on_message = broken
    send(attacker, b"abcdefgh12")
    assert wait_until(lambda: publisher.counters["network_restarts"] == 1, 10), publisher.stats()
    batch = results(10)
    for result in batch:
        publisher.publish_result(result)
    assert wait_until(lambda: {r["result_id"] for r in batch} <= set(counter.ids), 15), len(
        counter.ids
    )
    assert publisher.failure() is None


@pytest.mark.parametrize("payload", [b"abcdefgh12\n", b'{"subject_token": "abcdefgh12\\n"}'])
def test_a_token_with_a_trailing_newline_is_rejected(running, payload):
    publisher, box, counter, attacker = running
    send(attacker, payload)
    assert wait_until(lambda: publisher.counters["session_rejected"] == 1, 5)
    token = publisher.current_subject_token()
    result = build_result(make_walk(), make_prediction(), CONTEXT, subject_token=token)
    publisher.publish_result(result)
    assert wait_until(lambda: len(counter.ids) == 1, 10)
    assert counter.tokens == [None]


def test_the_result_schema_refuses_a_token_with_a_newline():
    result = build_result(make_walk(), make_prediction(), CONTEXT, subject_token="abcdefgh12")
    validate_result(result)
    result["subject_token"] = "abcdefgh12\n"
    with pytest.raises(ResultError, match="subject_token"):
        validate_result(result)


def test_a_flood_of_junk_is_counted_but_logged_at_a_limited_rate(running, caplog):
    publisher, box, counter, attacker = running
    with caplog.at_level(logging.WARNING, logger="edge.publishing.publisher"):
        for i in range(2000):
            attacker.publish(SESSION, f"bad {i}", qos=0)
        assert wait_until(lambda: publisher.counters["session_rejected"] >= 1500, 20), (
            publisher.counters
        )
        publisher.publish_result(results(1)[0])
        assert wait_until(lambda: len(counter.ids) == 1, 10)
    lines = [r for r in caplog.records if "session: rejected" in r.getMessage()]
    assert 1 <= len(lines) <= 5, (
        f"{len(lines)} log lines for {publisher.counters['session_rejected']} rejections"
    )


def test_a_flood_of_accepted_tokens_is_logged_at_a_limited_rate(running, caplog):
    publisher, box, counter, attacker = running
    before = publisher.counters["session_tokens"]
    with caplog.at_level(logging.INFO, logger="edge.publishing.publisher"):
        for i in range(245):
            attacker.publish(SESSION, f"flood-token-{i:04d}", qos=1)
        assert wait_until(lambda: publisher.counters["session_tokens"] - before == 245, 20), (
            publisher.counters
        )
        publisher.publish_result(results(1)[0])
        assert wait_until(lambda: len(counter.ids) == 1, 10)
        assert publisher.current_subject_token() == "flood-token-0244"  # the last one still wins
        publisher.session.summarise()
    session = [r.getMessage() for r in caplog.records if "session" in r.getMessage()]
    assert 1 <= len(session) <= 3, f"{len(session)} INFO lines for 245 tokens: {session}"
    # every token is accounted for: logged, or counted in a "suppressed" summary (the fixture's
    # probe tokens, sent before this test's capture, may be counted too)
    logged = sum("subject token set" in m and "suppressed" not in m for m in session)
    counted = 0
    for message in session:
        if "similar messages suppressed" in message:
            counted += int(message.rsplit("(", 1)[1].split()[0]) + 1
        elif "further 'session set'" in message:
            counted += int(message.split()[0])
    assert logged + counted >= 245, session


def test_the_reference_subscriber_survives_hostile_messages_on_the_result_topic(mosquitto):
    from edge.publishing.subscriber import ResultSubscriber
    from tests.edge.mqtt_support import broker_config

    sub = ResultSubscriber(broker_config(mosquitto))
    sub.start(wait=10)
    attacker = dashboard(mosquitto)
    try:
        for payload in (
            b"[" * 5000,
            b'{"result_id": ' + b"[" * 990,
            b"\xff\xfe",
            b"[1, 2]",
            b'"text"',
        ):
            attacker.publish(RESULT, payload, qos=1).wait_for_publish(5)
        good = results(1)[0]
        attacker.publish(RESULT, json.dumps(good), qos=1).wait_for_publish(5)
        assert sub.wait_for(1, timeout=10)
        assert [r["result_id"] for r in sub.results] == [good["result_id"]] and sub.invalid == 5
    finally:
        attacker.loop_stop()
        attacker.disconnect()
        sub.stop()
