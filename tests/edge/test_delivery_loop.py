"""edge.publishing.delivery.DeliveryLoop on its own, without the Publisher around it.

Most tests drive it with a real Outbox and a stand-in for paho's client that keeps paho's
signatures and return conventions (real MQTTMessageInfo objects with paho's rc codes, real
ReasonCodes for the broker's answers, a network thread that can end); the broker's answers
are given by the test. The last one runs it against a real mosquitto with a real paho client.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.client import MQTTErrorCode, MQTTMessageInfo
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.outbox.store import Outbox
from edge.publishing.client import build_client, mqtt_endpoint
from edge.publishing.delivery import NETWORK_RESTARTS, DeliveryLoop
from tests.edge.mqtt_support import broker_config

TOPIC = "gaitmil-test/v1/site-t/kiosk-t/result"
ACCEPTED = ReasonCode(PacketTypes.PUBACK, "Success")
REFUSED = ReasonCode(PacketTypes.PUBACK, "Not authorized")


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


class StandInClient:
    """paho's Client as the delivery loop meets it, with the broker left out.

    `publish` checks its arguments as paho does and returns a real MQTTMessageInfo with the next
    message id and `rc` (paho's MQTTErrorCode; set `rc` to make the next publishes fail as paho
    reports it). `_thread` stands in for paho's network thread; `die()` ends it.
    """

    def __init__(self) -> None:
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self.sent: list[tuple[int, str, bytes, int, bool]] = []  # mid, topic, payload, qos, retain
        self.disconnected = False
        self.loop_stopped = False
        self._mid = 0
        self._end = threading.Event()
        self._thread = threading.Thread(target=self._end.wait, name="stand-in network", daemon=True)
        self._thread.start()

    def publish(
        self,
        topic: str,
        payload: str | bytes | bytearray | int | float | None = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> MQTTMessageInfo:
        if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
            raise ValueError(f"invalid topic {topic!r}")
        if qos not in (0, 1, 2):
            raise ValueError(f"invalid QoS {qos!r}")
        if not isinstance(payload, (str, bytes, bytearray, int, float, type(None))):
            raise TypeError("payload must be a string, bytearray, int, float or None")
        self._mid += 1
        info = MQTTMessageInfo(self._mid)
        info.rc = self.rc
        if self.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            body = payload.encode() if isinstance(payload, str) else bytes(payload or b"")
            self.sent.append((self._mid, topic, body, qos, retain))
        return info

    def disconnect(
        self, reasoncode: ReasonCode | None = None, properties: Properties | None = None
    ) -> MQTTErrorCode:
        self.disconnected = True
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_stop(self) -> MQTTErrorCode:
        self.loop_stopped = True
        self.die()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def die(self) -> None:
        self._end.set()
        self._thread.join(timeout=5)

    def payloads(self) -> list[bytes]:
        return [payload for _, _, payload, _, _ in self.sent]


@pytest.mark.parametrize("name", ["publish", "disconnect", "loop_stop"])
def test_the_stand_in_takes_what_paho_takes(name):
    ours = inspect.signature(getattr(StandInClient, name)).parameters.values()
    pahos = inspect.signature(getattr(paho.Client, name)).parameters.values()
    assert [(p.name, p.kind, p.default) for p in ours] == [
        (p.name, p.kind, p.default) for p in pahos
    ]


class Harness:
    """A DeliveryLoop on a real outbox, connecting stand-in clients (all kept in `clients`)."""

    def __init__(self, outbox: Outbox, inflight: int = 2) -> None:
        self.clients: list[StandInClient] = []
        self.lost = 0
        self.loop = DeliveryLoop(
            outbox, self._connect, inflight=inflight, on_network_lost=self._lost
        )

    def _connect(self) -> StandInClient:
        client = StandInClient()
        self.clients.append(client)
        return client

    def _lost(self) -> None:
        self.lost += 1

    @property
    def client(self) -> StandInClient:
        return self.clients[-1]

    def connect(self) -> None:
        """What the publisher's on_connect does for the loop."""
        self.loop.connected = True
        self.loop.on_connected()

    def ack(self, mid: int, reason: ReasonCode = ACCEPTED) -> None:
        self.loop.on_publish_ack(mid, reason)

    def stop(self) -> None:
        self.loop.stop(timeout=5)


@pytest.fixture
def box(tmp_path: Path):
    with Outbox(tmp_path / "o.db") as outbox:
        yield outbox


@pytest.fixture
def harness(box: Outbox):
    made = Harness(box)
    yield made
    made.stop()


def fill(box: Outbox, count: int) -> list[int]:
    return [box.put(TOPIC, f"r{i}".encode(), 1, message_id=f"r{i}") for i in range(count)]


def test_rows_go_to_paho_in_order_at_most_inflight_and_leave_on_acknowledgement(box, harness):
    rows = fill(box, 5)
    harness.loop.start()
    harness.connect()
    assert wait_until(lambda: len(harness.client.sent) == 2)
    time.sleep(0.2)
    assert harness.client.payloads() == [b"r0", b"r1"]  # inflight 2: no more until acknowledged
    assert harness.loop.in_flight == 2
    for acked in range(1, 6):  # the oldest first; each acknowledgement makes room for one more
        harness.ack(harness.client.sent[acked - 1][0])
        assert wait_until(lambda a=acked: len(harness.client.sent) == min(a + 2, 5))
    assert wait_until(lambda: box.depth == 0)
    assert harness.client.payloads() == [b"r0", b"r1", b"r2", b"r3", b"r4"]
    assert {(topic, qos, retain) for _, topic, _, qos, retain in harness.client.sent} == {
        (TOPIC, 1, False)
    }
    assert harness.loop.counters["published"] == 5 and harness.loop.counters["acked"] == 5
    assert box.stats()["acked_total"] == len(rows)


def test_nothing_is_handed_to_paho_until_connected(box, harness):
    fill(box, 3)
    harness.loop.start()
    time.sleep(0.7)  # past a tick of the owner thread
    assert harness.client.sent == []
    harness.connect()
    assert wait_until(lambda: len(harness.client.sent) == 2)


def test_a_refused_row_is_parked_with_the_reason_and_not_published_again(box, harness):
    refused, accepted = fill(box, 2)
    harness.loop.start()
    harness.connect()
    assert wait_until(lambda: len(harness.client.sent) == 2)
    first, second = (mid for mid, *_ in harness.client.sent)
    harness.ack(first, REFUSED)
    harness.ack(second)
    assert wait_until(lambda: box.depth == 0)
    assert [(row.row_id, row.reason) for row in box.parked()] == [(refused, "Not authorized")]
    assert harness.loop.counters["parked"] == 1 and harness.loop.counters["acked"] == 1
    harness.loop.notify_new_row()
    time.sleep(0.7)
    assert len(harness.client.sent) == 2  # the parked row waits for the operator (or a restart)


def test_a_publish_paho_refuses_is_tried_again_and_no_connection_counts_as_handed(box, harness):
    fill(box, 2)
    harness.loop.start()
    client = harness.client
    client.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE  # paho's queue is full: not taken
    harness.connect()
    time.sleep(0.7)
    assert client.sent == [] and harness.loop.in_flight == 0
    client.rc = MQTTErrorCode.MQTT_ERR_NO_CONN  # paho keeps it and sends it after reconnecting
    assert wait_until(lambda: len(client.sent) == 2, 3)
    assert harness.loop.in_flight == 2 and harness.loop.counters["published"] == 2


def test_results_the_outbox_cannot_store_are_published_directly_and_leave_memory_on_ack(
    tmp_path,
):
    # a budget smaller than one row: every put is refused, the result waits in memory
    with Outbox(tmp_path / "small.db", disk_budget_bytes=64) as small:
        harness = Harness(small)
        try:
            assert harness.loop.submit(TOPIC, b"held", 0, "h1") is None
            assert len(harness.loop.held) == 1
            harness.loop.start()
            harness.connect()
            assert wait_until(lambda: len(harness.client.sent) == 1)
            mid, topic, payload, qos, retain = harness.client.sent[0]
            assert (topic, payload, qos, retain) == (TOPIC, b"held", 1, False)  # QoS 1 at least
            assert not harness.loop.flush(0.2)  # waits for the broker's acknowledgement
            harness.ack(mid)
            assert harness.loop.flush(5)
            assert len(harness.loop.held) == 0 and small.depth == 0
            assert harness.loop.counters["published_direct"] == 1
            assert harness.loop.counters["acked"] == 1
        finally:
            harness.stop()


def test_an_acknowledgement_the_outbox_cannot_record_is_retried(box, harness):
    fill(box, 1)
    harness.loop.start()
    harness.connect()
    assert wait_until(lambda: len(harness.client.sent) == 1)
    box._conn.execute("PRAGMA query_only = 1")  # every write fails, as on a read-only remount
    harness.ack(harness.client.sent[0][0])
    assert wait_until(lambda: harness.loop.counters["outbox_errors"] > 0)
    assert harness.loop.outbox_error is not None and box.depth == 1
    assert harness.loop.failure is None and harness.loop.thread.is_alive()
    box._conn.execute("PRAGMA query_only = 0")
    assert wait_until(lambda: box.depth == 0)
    assert wait_until(lambda: harness.loop.outbox_error is None)
    assert len(harness.client.sent) == 1  # recorded, not published again


def test_a_dead_network_thread_gets_a_new_client_and_in_flight_rows_go_again(box, harness):
    fill(box, 2)
    harness.loop.start()
    harness.connect()
    first = harness.client
    assert wait_until(lambda: len(first.sent) == 2)
    first.die()
    assert wait_until(lambda: len(harness.clients) == 2)
    assert first.disconnected and harness.lost == 1 and not harness.loop.connected
    assert harness.loop.client is harness.client and harness.loop.in_flight == 0
    harness.ack(first.sent[0][0])  # an answer on the dead connection means nothing now
    harness.connect()
    second = harness.client
    assert wait_until(lambda: len(second.sent) == 2)
    assert second.payloads() == [b"r0", b"r1"]
    for mid, *_ in second.sent:
        harness.ack(mid)
    assert wait_until(lambda: box.depth == 0)
    assert harness.loop.counters["network_restarts"] == 1 and harness.loop.failure is None


def test_a_network_thread_that_keeps_dying_ends_delivery_with_a_failure(box, harness):
    harness.loop.start()
    for died in range(1, NETWORK_RESTARTS + 2):
        harness.client.die()
        harness.loop.notify_new_row()
        if died <= NETWORK_RESTARTS:
            assert wait_until(lambda d=died: len(harness.clients) == d + 1)
    assert wait_until(lambda: harness.loop.failure is not None)
    assert f"ended {NETWORK_RESTARTS + 1} times" in str(harness.loop.failure)
    assert len(harness.clients) == NETWORK_RESTARTS + 1
    assert wait_until(lambda: not harness.loop.thread.is_alive())


def test_stop_disconnects_and_a_started_loop_cannot_start_again(box, harness):
    from edge.errors import PublishError

    harness.loop.start()
    client = harness.client
    with pytest.raises(PublishError, match="already started"):
        harness.loop.start()
    harness.stop()
    assert client.disconnected and client.loop_stopped
    assert harness.loop.client is None and not harness.loop.connected
    assert not harness.loop.thread.is_alive()
    harness.loop.start()  # a stopped loop starts again, with a new client
    assert len(harness.clients) == 2


def test_a_replaced_outbox_is_also_the_one_held_results_are_written_to(box, tmp_path):
    with Outbox(tmp_path / "other.db") as other:
        loop = DeliveryLoop(box, StandInClient, inflight=1)
        loop.outbox = other
        assert loop.outbox is other and loop.held.outbox is other


def test_it_delivers_through_a_real_paho_client_to_mosquitto(mosquitto, box):
    received: list[bytes] = []
    subscribed = threading.Event()
    listener = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    listener.on_message = lambda client, userdata, message: received.append(message.payload)
    listener.on_subscribe = lambda *args: subscribed.set()
    listener.connect(mosquitto.host, mosquitto.port)
    listener.subscribe(TOPIC, qos=1)
    listener.loop_start()
    assert subscribed.wait(10)
    loop: DeliveryLoop

    def connect() -> paho.Client:
        client, args = build_client(mqtt_endpoint(broker_config(mosquitto), "delivery-loop"))

        def on_connect(client, userdata, flags, reason_code, properties) -> None:
            loop.connected = not reason_code.is_failure
            loop.on_connected()

        client.on_connect = on_connect
        client.on_publish = lambda client, userdata, mid, reason_code, properties: (
            loop.on_publish_ack(mid, reason_code)
        )
        client.connect_async(**args)
        client.loop_start()
        return client

    loop = DeliveryLoop(box, connect, inflight=3)
    try:
        results = [json.dumps({"result_id": f"r{i}"}).encode() for i in range(10)]
        for i, payload in enumerate(results):
            assert loop.submit(TOPIC, payload, 1, f"r{i}") is not None
        loop.start()
        assert loop.flush(15), (box.depth, loop.counters)
        assert wait_until(lambda: len(received) == 10, 10)
        assert received == results  # in order, each once
        assert loop.counters["acked"] == 10 and loop.failure is None
    finally:
        loop.stop()
        listener.disconnect()
        listener.loop_stop()
