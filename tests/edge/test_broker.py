"""edge.publishing.broker: the demo's embedded amqtt broker carries a kiosk's results to a subscriber."""

from __future__ import annotations

import socket

import pytest

from edge.errors import PublishError
from edge.outbox.store import Outbox
from edge.publishing.broker import EmbeddedBroker
from edge.publishing.publisher import Publisher
from edge.publishing.subscriber import ResultSubscriber
from tests.edge.mqtt_support import broker_config, publisher_settings_for
from tests.edge.test_mqtt import results


def test_embedded_broker_carries_results_and_stops(tmp_path):
    broker = EmbeddedBroker()
    url = broker.start()
    assert url.startswith("mqtt://127.0.0.1:") and broker.running
    try:
        sub = ResultSubscriber(broker_config(broker, protocol="3.1.1"))
        sub.start()
        sent = results(5)
        with Outbox(tmp_path / "o.db") as box:
            # amqtt speaks MQTT 3.1.1 only
            publisher = Publisher(publisher_settings_for(broker, protocol="3.1.1"), box)
            publisher.start()
            try:
                for r in sent:
                    publisher.publish_result(r)
                assert publisher.flush(20), publisher.stats()
                assert sub.wait_for(5, 10)
            finally:
                assert publisher.stop()
                sub.stop()
        assert [r["result_id"] for r in sub.results] == [r["result_id"] for r in sent]
    finally:
        broker.stop()
    assert not broker.running
    with pytest.raises(OSError):
        socket.create_connection((broker.host, broker.port), timeout=1).close()


def test_busy_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        broker = EmbeddedBroker(port=taken.getsockname()[1])
        with pytest.raises(PublishError, match="could not listen on 127.0.0.1"):
            broker.start()
        assert not broker.running


def test_url_before_start_is_an_error():
    with pytest.raises(PublishError, match="start"):
        _ = EmbeddedBroker().url
