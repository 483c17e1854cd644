"""A plain MQTT 5 publisher for central's tests (QoS 1, waits for every PUBACK)."""

from __future__ import annotations

import paho.mqtt.client as mqtt


class KioskPublisher:
    def __init__(self, host: str, port: int, client_id: str = "test-kiosk") -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        if not info.is_published():
            raise RuntimeError(f"broker did not acknowledge {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
