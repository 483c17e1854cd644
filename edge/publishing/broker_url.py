"""The broker address in mqtt.url: `mqtt://host[:port]` or `mqtts://host[:port]`.

Its own module because both the config tree (validating mqtt.url) and the
MQTT clients (connecting) parse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class BrokerAddress:
    scheme: str  # "mqtt" or "mqtts"
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://host[:port]` or `mqtts://host[:port]` -> BrokerAddress (ValueError if malformed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"broker URL must start with mqtt:// or mqtts://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host: use mqtt://HOST:PORT")
    if parts.username or parts.password:
        raise ValueError(
            "broker URL must not carry credentials: use mqtt.username and mqtt.password_file"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"broker URL {url!r} has a bad port: {exc}") from None
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"broker URL {url!r} has a path or query: use only mqtt://HOST:PORT")
    return BrokerAddress(
        parts.scheme, parts.hostname, port or (8883 if parts.scheme == "mqtts" else 1883)
    )
