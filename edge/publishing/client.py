"""The one paho client builder of the kiosk side, and the values it is built from.

The MQTT settings are declared once, as the pydantic `MqttConfig` (and its
`TLSConfig`) in edge.settings. `mqtt_endpoint` derives from one such section
what a connection needs besides it: the broker address parsed from mqtt.url,
whether TLS is on, the client id, and the password read from
mqtt.password_file. `build_client` turns an endpoint into a configured paho-mqtt
2.x client (callback API version 2): protocol, client id, credentials, TLS,
last will, reconnect backoff, and the keyword arguments for its connect. The
publisher (edge.publishing.publisher), the reference subscriber (edge.publishing.subscriber) and
`python -m edge check` all build their clients here; central/ has its own
(central imports nothing of edge).

`is_auth_refusal` tells a refused login by the reason code's name: paho 2.x
turns MQTT 3.1.1 CONNACK return codes into MQTT 5 reason codes with other
numbers, so only the names agree across both protocols.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NotRequired, TypedDict

from edge.errors import PublishError
from edge.publishing.broker_url import parse_broker_url
from edge.publishing.topics import Topics
from edge.settings import KioskIdentity, MqttConfig

if TYPE_CHECKING:
    import paho.mqtt.client as paho_client
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

# CONNACK refusals that mean "fix the credentials or the ACL", by paho's names: MQTT 5 0x86 / 0x87,
# and MQTT 3.1.1 return codes 4 / 5, which paho converts to reason codes of the same names
AUTH_REFUSALS = frozenset({"Bad user name or password", "Not authorized"})


def is_auth_refusal(reason_code: ReasonCode) -> bool:
    """True when a CONNACK reason code says the user name, password or authorization was refused."""
    return reason_code.getName() in AUTH_REFUSALS


@dataclass(frozen=True)
class MqttEndpoint:
    """One client's connection, derived from an MqttConfig by `mqtt_endpoint`; no defaults of its own."""

    config: MqttConfig
    host: str
    port: int
    tls: bool
    client_id: str
    password: str | None = field(repr=False)

    @property
    def broker(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def mqtt_endpoint(config: MqttConfig, client_id: str) -> MqttEndpoint:
    """The endpoint for `config` with this client id; reads mqtt.password_file (ConfigError if unreadable)."""
    from edge.config import read_password

    address = parse_broker_url(config.url)  # validated by MqttConfig already
    tls = address.tls or config.tls.ca_file is not None or config.tls.cert_file is not None
    return MqttEndpoint(config, address.host, address.port, tls, client_id, read_password(config))


@dataclass(frozen=True)
class PublisherSettings:
    """What the publisher needs: the [mqtt] section, the kiosk's identity and its endpoint.

    Built by `publisher_settings` only; every value comes from the config sections.
    """

    mqtt: MqttConfig
    identity: KioskIdentity
    endpoint: MqttEndpoint

    @property
    def broker(self) -> str:
        return self.endpoint.broker

    @property
    def site_id(self) -> str:
        return self.identity.site_id

    @property
    def kiosk_id(self) -> str:
        return self.identity.kiosk_id

    @property
    def topics(self) -> Topics:
        return Topics.for_kiosk(
            self.mqtt.topic_prefix, self.identity.site_id, self.identity.kiosk_id
        )


def publisher_settings(
    mqtt: MqttConfig, identity: KioskIdentity, client_id: str
) -> PublisherSettings:
    """The publisher's settings from the [mqtt] and [kiosk] sections (KioskConfig.client_id for the id)."""
    return PublisherSettings(mqtt, identity, mqtt_endpoint(mqtt, client_id))


class ConnectArgs(TypedDict):
    """The keyword arguments of paho's connect() / connect_async() for one endpoint."""

    host: str
    port: int
    keepalive: int
    clean_start: NotRequired[bool]  # MQTT 5 only
    properties: NotRequired[Properties]  # MQTT 5 only: the session expiry of a persistent session


def describe_connect_error(exc: BaseException | None, s: MqttEndpoint) -> str:
    """Why a connection attempt failed, in words, with the ssl/socket reason and the setting to check."""
    where = f"{s.host}:{s.port}"
    if exc is None:
        return f"{where} unreachable, or the TLS handshake or certificate was refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the broker's TLS certificate was refused: {exc.verify_message or exc.reason}; check mqtt.tls.ca_file "
            f"and that the host name in mqtt.url ({s.host}) is a name in the broker's certificate"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS handshake with {where} failed: {exc.reason or exc}; is it a TLS port, and are "
            "mqtt.tls.cert_file/key_file the ones the broker expects?"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection (no broker listening there?)"
    if isinstance(exc, socket.gaierror):
        return f"the host name {s.host!r} cannot be resolved ({exc}); check mqtt.url"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer (timeout); check mqtt.url and the network"
    return f"{where}: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Will:
    """The last will the broker publishes when the client vanishes without a DISCONNECT."""

    topic: str
    payload: str
    qos: int
    retain: bool


def build_client(
    s: MqttEndpoint, *, will: Will | None = None, session_expiry_s: int | None = None
) -> tuple[paho_client.Client, ConnectArgs]:
    """A configured, not yet connected paho client and the keyword arguments for its connect().

    `session_expiry_s` None is a clean session; a number asks for a persistent one (MQTT 5:
    clean_start False and that session expiry; 3.1.1: clean_session False), which needs a fixed
    client id. PublishError if paho is missing or the TLS files are unusable.
    """
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise PublishError(
            "the MQTT clients need paho-mqtt>=2.1: pip install gaitmil-edge"
        ) from None
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    cfg = s.config
    v5 = cfg.protocol == "5"
    persistent = session_expiry_s is not None
    if persistent and not s.client_id:
        raise PublishError("a persistent MQTT session needs a fixed client id: set mqtt.client_id")
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=s.client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,  # MQTT 5 takes clean_start at connect
    )
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    if cfg.username:
        client.username_pw_set(cfg.username, s.password)
    if s.tls:
        tls = cfg.tls
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise PublishError(
                f"TLS setup for {s.broker} failed: {exc}; check mqtt.tls.ca_file/cert_file/key_file"
            ) from None
        client.tls_insecure_set(tls.insecure)
    client.reconnect_delay_set(
        min_delay=max(1, round(cfg.reconnect_min_delay)),
        max_delay=max(1, round(cfg.reconnect_max_delay)),
    )
    connect: ConnectArgs = {"host": s.host, "port": s.port, "keepalive": cfg.keepalive}
    if v5:
        connect["clean_start"] = not persistent
        if session_expiry_s is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry_s
            connect["properties"] = props
    return client, connect


__all__ = [
    "AUTH_REFUSALS",
    "ConnectArgs",
    "MqttEndpoint",
    "PublisherSettings",
    "Will",
    "build_client",
    "describe_connect_error",
    "is_auth_refusal",
    "mqtt_endpoint",
    "publisher_settings",
]
