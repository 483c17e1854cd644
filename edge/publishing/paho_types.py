"""The part of paho-mqtt's client the kiosk's publisher and delivery loop use, as Protocols.

paho's `Client` and `MQTTMessageInfo` satisfy them as they are; naming only what is used keeps
the delivery loop testable with a small stand-in that honours the same signatures and return
conventions (`publish` returns a message info whose `rc` is 0 when queued, 4 without a
connection, and its message id `mid`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from paho.mqtt.reasoncodes import ReasonCode

# paho's MQTTErrorCode values the delivery loop tells apart
MQTT_ERR_SUCCESS = 0
MQTT_ERR_NO_CONN = 4  # not connected: paho queued the message and sends it after reconnecting


class MessageInfo(Protocol):
    """What paho's `publish` returns (paho.mqtt.client.MQTTMessageInfo)."""

    @property
    def mid(self) -> int: ...

    @property
    def rc(self) -> int: ...

    def is_published(self) -> bool: ...


class PahoClient(Protocol):
    """The paho client calls the publisher and its delivery loop make once it is connecting."""

    def publish(
        self, topic: str, payload: str | bytes | None = None, qos: int = 0, retain: bool = False
    ) -> MessageInfo: ...

    def subscribe(
        self, topic: str | list[tuple[str, int]], qos: int = 0
    ) -> tuple[int, int | None]: ...

    def disconnect(self) -> int: ...

    def loop_stop(self) -> int: ...


class ReceivedMessage(Protocol):
    """An incoming message as paho hands it to `on_message` (paho.mqtt.client.MQTTMessage)."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes | bytearray: ...

    @property
    def retain(self) -> bool: ...


# paho's callback API version 2, as the publisher and the subscriber write their callbacks:
# (client, userdata, flags or mid, reason code(s), properties); what they do not read is `object`
OnConnect = Callable[[PahoClient, object, object, "ReasonCode", object], None]
OnDisconnect = OnConnect  # (client, userdata, disconnect flags, reason code, properties)
OnPublish = Callable[[PahoClient, object, int, "ReasonCode", object], None]
OnSubscribe = Callable[[PahoClient, object, int, "list[ReasonCode]", object], None]
OnMessage = Callable[[PahoClient, object, ReceivedMessage], None]
OnConnectFail = Callable[[PahoClient, object], None]
