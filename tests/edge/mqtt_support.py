"""[mqtt] sections for test brokers: tests build the same pydantic MqttConfig the kiosk loads.

`broker_config(broker, ...)` is an MqttConfig for a test broker (anything with .host and
.port); `publisher_settings_for(broker, ...)` the Publisher's settings from it and a kiosk
identity, built by edge.publishing.client.publisher_settings as the service builds them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.publishing.client import PublisherSettings, publisher_settings
from edge.settings import KioskIdentity, MqttConfig, TLSConfig


def password_file(password: str, directory: Path | None = None) -> Path:
    """A file holding `password`, readable by its owner only (as mqtt.password_file wants it)."""
    folder = (
        Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="gaitmil-pw-"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"password-{time.monotonic_ns()}"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def broker_config(
    broker: Any,
    *,
    host: str | None = None,
    tls: bool = False,
    password: str | None = None,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    insecure: bool = False,
    **keys: Any,
) -> MqttConfig:
    """MqttConfig for `broker` (its .host, .port; `host` replaces the host name).

    `tls` False leaves the TLS files out (mqtt.tls files switch TLS on); `password` is written
    to a password file; any other keyword is an [mqtt] key. Protocol "3.1.1" sets
    allow_protocol_311, as a config file must; reconnects wait 1-5 s unless given.
    """
    url = f"{'mqtts' if tls else 'mqtt'}://{host or broker.host}:{broker.port}"
    # test brokers stop and restart: clients come back within seconds, not the minute a kiosk waits
    keys.setdefault("reconnect_min_delay", 1)
    keys.setdefault("reconnect_max_delay", 5)
    if keys.get("protocol") == "3.1.1":
        keys.setdefault("allow_protocol_311", True)
    if password is not None:
        keys["password_file"] = password_file(password, getattr(broker, "workdir", None))
    tls_keys: dict[str, Any] = {}
    if tls:
        tls_keys = {
            "ca_file": ca_file,
            "cert_file": cert_file,
            "key_file": key_file,
            "insecure": insecure,
        }
    return MqttConfig(url=url, tls=TLSConfig(**tls_keys), **keys)


def publisher_settings_for(
    broker: Any,
    *,
    site_id: str = "site-t",
    kiosk_id: str = "kiosk-t",
    client_id: str | None = None,
    **keys: Any,
) -> PublisherSettings:
    """The Publisher's settings for `broker`; fast reconnects (1-2 s) unless given."""
    keys.setdefault("reconnect_min_delay", 1)
    keys.setdefault("reconnect_max_delay", max(2, keys["reconnect_min_delay"]))
    return publisher_settings(
        broker_config(broker, **keys),
        KioskIdentity(site_id=site_id, kiosk_id=kiosk_id),
        client_id or f"kiosk-{os.getpid()}-{time.monotonic_ns()}",
    )


class Address:
    """A broker address without a broker object (for a subprocess given a port)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
