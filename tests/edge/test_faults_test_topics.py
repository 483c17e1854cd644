"""Test data never mixes with real records: the demo publishes under the test prefix, against mosquitto.

A separate paho client subscribed to every topic (`#`) records what reached the broker.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

from edge.cli import main
from edge.errors import ConfigError
from edge.publishing.topic_guard import TEST_PREFIX, guarded_prefix, is_production
from tests.edge.test_mqtt import wait_until


class Everything:
    """Every topic that reached the broker, in order."""

    def __init__(self, broker) -> None:
        self.topics: list[str] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda client, userdata, message: self.topics.append(message.topic)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("no SUBACK for # within 10 s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_production_prefix_needs_the_named_flag():
    assert guarded_prefix(None, False, "tool") == TEST_PREFIX and not is_production(TEST_PREFIX)
    assert guarded_prefix("lab/v1", False, "tool") == "lab/v1"
    for production in ("gaitmil/v1", "gaitmil/v2", "/gaitmil/v1"):
        with pytest.raises(ConfigError, match=r"tool: topic prefix .* --allow-production-prefix"):
            guarded_prefix(production, False, "tool")
    assert guarded_prefix("gaitmil/v1", True, "tool") == "gaitmil/v1"


def test_the_demo_publishes_under_the_test_prefix_only(mosquitto, kiosk_model, capsys):
    seen = Everything(mosquitto)
    try:
        code = main(
            ["demo", "--walks", "1", "--model", str(kiosk_model), "--broker", mosquitto.url]
        )
        assert code == 0, capsys.readouterr()
        assert wait_until(lambda: any(t.endswith("/result") for t in seen.topics), 10)
    finally:
        seen.close()
    assert seen.topics and all(t.startswith(f"{TEST_PREFIX}/") for t in seen.topics), seen.topics
    assert f"topics {TEST_PREFIX}/..." in capsys.readouterr().out


def test_the_demo_refuses_the_production_prefix_and_publishes_nothing(
    mosquitto, kiosk_model, capsys
):
    seen = Everything(mosquitto)
    try:
        args = ["demo", "--walks", "1", "--model", str(kiosk_model), "--broker", mosquitto.url]
        assert main([*args, "--topic-prefix", "gaitmil/v1"]) == 3
    finally:
        seen.close()
    assert seen.topics == []
    err = capsys.readouterr().err
    assert "'gaitmil/v1' is where real kiosks publish" in err and "--allow-production-prefix" in err
