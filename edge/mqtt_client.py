"""The publisher's connection settings and the paho client built from them.

PublisherSettings holds plain values (from a KioskConfig or given directly);
`build_client` makes a paho-mqtt 2.x client with callback API version 2:
protocol, last will, credentials, TLS, reconnect backoff and in-flight window.
Callbacks and the network loop are the Publisher's (edge.mqtt).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import PublishError
from edge.topics import Topics


@dataclass
class PublisherSettings:
    """Plain values the publisher needs; `from_config` builds them from a KioskConfig."""

    host: str = "127.0.0.1"
    port: int = 1883
    site_id: str = "site-0"
    kiosk_id: str = "kiosk-0"
    topic_prefix: str = "gaitmil/v1"
    protocol: str = "5"  # "5" or "3.1.1"
    client_id: str = "gaitmil-site-0-kiosk-0"
    keepalive: int = 30
    qos: int = 1
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    inflight: int = 20
    session_token_ttl_seconds: float = 300.0

    @classmethod
    def from_config(cls, cfg: Any) -> PublisherSettings:
        from edge.broker_url import parse_broker_url
        from edge.config import read_password

        address = parse_broker_url(cfg.mqtt.url)
        tls = cfg.mqtt.tls
        return cls(
            host=address.host, port=address.port, site_id=cfg.kiosk.site_id, kiosk_id=cfg.kiosk.kiosk_id,
            topic_prefix=cfg.mqtt.topic_prefix, protocol=cfg.mqtt.protocol, client_id=cfg.client_id,
            keepalive=cfg.mqtt.keepalive, qos=cfg.mqtt.qos, username=cfg.mqtt.username, password=read_password(cfg),
            tls=address.tls or tls.ca_file is not None or tls.cert_file is not None,
            ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file, tls_insecure=tls.insecure,
            reconnect_min_delay=cfg.mqtt.reconnect_min_delay, reconnect_max_delay=cfg.mqtt.reconnect_max_delay,
            inflight=cfg.mqtt.inflight, session_token_ttl_seconds=cfg.mqtt.session_token_ttl_seconds,
        )

    @property
    def broker(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def topics(self) -> Topics:
        return Topics.for_kiosk(self.topic_prefix, self.site_id, self.kiosk_id)


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise PublishError("the MQTT publisher needs paho-mqtt>=2.1: pip install gaitmil-edge") from None
    return mqtt


def describe_connect_error(exc: BaseException | None, s: PublisherSettings) -> str:
    """Why a connection attempt failed, in words, with the ssl/socket reason and the setting to check."""
    where = f"{s.host}:{s.port}"
    if exc is None:
        return f"{where} unreachable, or the TLS handshake or certificate was refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the broker's TLS certificate was refused: {exc.verify_message or exc.reason}; check mqtt.tls.ca_file "
                f"and that the host name in mqtt.url ({s.host}) is a name in the broker's certificate")
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake with {where} failed: {exc.reason or exc}; is it a TLS port, and are "
                "mqtt.tls.cert_file/key_file the ones the broker expects?")
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection (no broker listening there?)"
    if isinstance(exc, socket.gaierror):
        return f"the host name {s.host!r} cannot be resolved ({exc}); check mqtt.url"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer (timeout); check mqtt.url and the network"
    return f"{where}: {type(exc).__name__}: {exc}"


def build_client(s: PublisherSettings, will_topic: str, will_payload: str) -> Any:
    """A configured, not yet connected paho client; PublishError if paho or the TLS files are unusable."""
    mqtt = _paho()
    v5 = s.protocol == "5"
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=s.client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        **({} if v5 else {"clean_session": True}),
    )
    client.will_set(will_topic, will_payload, qos=1, retain=True)
    if s.username:
        client.username_pw_set(s.username, s.password)
    if s.tls:
        try:
            client.tls_set(
                ca_certs=str(s.ca_file) if s.ca_file else None,
                certfile=str(s.cert_file) if s.cert_file else None,
                keyfile=str(s.key_file) if s.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise PublishError(
                f"TLS setup for {s.broker} failed: {exc}; check mqtt.tls.ca_file/cert_file/key_file"
            ) from None
        client.tls_insecure_set(s.tls_insecure)
    client.reconnect_delay_set(min_delay=max(1, round(s.reconnect_min_delay)), max_delay=max(1, round(s.reconnect_max_delay)))
    client.max_inflight_messages_set(s.inflight)
    client.max_queued_messages_set(0)
    return client
