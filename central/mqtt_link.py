"""The central side's MQTT connection: settings, the paho client, the broker URL.

One fixed client id and a persistent session (MQTT 5: clean_start False and a
session expiry; 3.1.1: clean_session False), so the broker queues QoS 1
messages while central is down. Messages are acknowledged by hand only after
they are committed to the database (central/ingest.py).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from central.errors import CentralError
from gaitcontract.topics import DEFAULT_PREFIX

SESSION_EXPIRY_S = 7 * 86400  # a week of queued results if central is away

# CONNACK refusals that mean "fix the credentials or the ACL", by paho's reason-code names: paho 2.x
# turns MQTT 3.1.1 return codes 4 / 5 into MQTT 5 reason codes of these names (numbers 0x86 / 0x87)
AUTH_REFUSALS = frozenset({"Bad user name or password", "Not authorized"})


def is_auth_refusal(reason_code: Any) -> bool:
    """True when a paho CONNACK reason code says the user name, password or authorization was refused."""
    return str(reason_code.getName()) in AUTH_REFUSALS


@dataclass(frozen=True)
class BrokerSettings:
    url: str = "mqtt://127.0.0.1:1883"
    protocol: str = "5"  # "5" or "3.1.1" (the embedded demo broker speaks only 3.1.1)
    client_id: str = "gaitmil-central"
    topic_prefix: str = DEFAULT_PREFIX
    share_group: str | None = None  # $share/<group>/... to spread messages over several workers
    session_expiry_s: int = SESSION_EXPIRY_S
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    keepalive: int = 30

    def address(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise CentralError(f"--broker {self.url!r}: use mqtt://HOST:PORT or mqtts://HOST:PORT")
        if parts.username or parts.password:
            raise CentralError(
                "--broker must not carry credentials: use --mqtt-user and --mqtt-password-file"
            )
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise CentralError(f"--broker {self.url!r} has a bad port: {exc}") from None
        return parts.hostname, port, tls

    def check(self) -> None:
        self.address()
        if self.protocol not in ("5", "3.1.1"):
            raise CentralError(f"--mqtt-protocol {self.protocol!r}: use 5 or 3.1.1")
        if self.share_group and self.protocol != "5":
            raise CentralError(
                "shared subscriptions ($share/...) need MQTT 5: drop --share-group or use --mqtt-protocol 5"
            )
        if not self.client_id:
            raise CentralError("a persistent session needs a fixed --client-id")


def build_client(settings: BrokerSettings, client_id: str, *, manual_ack: bool) -> tuple[Any, dict]:
    """A configured paho client and the keyword arguments for its connect()."""
    try:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
    except ImportError:
        raise CentralError(
            "central's ingest needs paho-mqtt: pip install 'gaitmil-edge[central]'"
        ) from None
    settings.check()
    host, port, tls = settings.address()
    v5 = settings.protocol == "5"
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
        clean_session=None if v5 else False,  # MQTT 5 keeps the session by its expiry instead
    )
    if settings.username:
        password = None
        if settings.password_file is not None:
            try:
                password = settings.password_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError) as exc:
                raise CentralError(
                    f"--mqtt-password-file {settings.password_file}: {exc}"
                ) from None
        client.username_pw_set(settings.username, password)
    if tls:
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    client.reconnect_delay_set(1, 5)
    connect: dict = {"host": host, "port": port, "keepalive": settings.keepalive}
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = settings.session_expiry_s
        connect.update(clean_start=False, properties=props)
    return client, connect


class TokenPublisher:
    """A publish-only connection for a web front that runs without an ingest (district setup)."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self._client: Any = None

    def start(self) -> None:
        client, connect = build_client(
            self.settings, f"{self.settings.client_id}-web", manual_ack=False
        )
        client.connect_async(**connect)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        if self._client is None or not self._client.is_connected():
            raise CentralError(
                f"not connected to the broker {self.settings.url}: the token was not sent; try again"
            )
        info = self._client.publish(topic, payload, qos=1, retain=False)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise CentralError(
                f"the broker {self.settings.url} did not acknowledge {topic} within {timeout:.0f} s"
            )
