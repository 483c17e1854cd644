"""The broker a benchmark talks to: a loopback URL the user gives, or the embedded demo broker.

Benchmarks flood a broker with connections and messages, so they refuse anything that is not on this
machine: pointing `fanin --kiosks 200` at a school district's broker by mistake must be impossible.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from benchmarks.errors import BenchmarkError


@dataclass(frozen=True)
class LocalBroker:
    url: str
    host: str
    port: int
    protocol: str  # MQTT protocol the broker speaks: "5" or "3.1.1" (the embedded amqtt broker)
    embedded: bool


def _is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    # every address the name resolves to must be loopback, or a connection could leave the machine
    return bool(infos) and all(
        ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos
    )


def require_loopback(url: str) -> tuple[str, int]:
    """(host, port) of a mqtt:// URL on loopback, or BenchmarkError saying why it is refused."""
    from edge.publishing.broker_url import parse_broker_url

    try:
        address = parse_broker_url(url)
    except ValueError as exc:
        raise BenchmarkError(f"--broker {url!r}: {exc}") from None
    if address.tls:
        raise BenchmarkError(f"--broker {url!r}: benchmarks use plain mqtt:// on loopback, not TLS")
    if not _is_loopback_host(address.host):
        raise BenchmarkError(
            f"--broker {url!r}: {address.host} is not a loopback address; benchmarks only load a broker on this "
            "machine (e.g. mosquitto -p 1883 and --broker mqtt://127.0.0.1:1883)"
        )
    return address.host, address.port


@contextmanager
def local_broker(url: str | None, protocol: str = "5") -> Iterator[LocalBroker]:
    """Yield the broker to use: `url` (loopback only) or, when None, the embedded broker started here."""
    if url is not None:
        host, port = require_loopback(url)
        yield LocalBroker(url, host, port, protocol, embedded=False)
        return
    from edge.publishing.broker import EmbeddedBroker

    broker = EmbeddedBroker()
    started = broker.start()
    try:
        # amqtt speaks MQTT 3.1.1 only
        yield LocalBroker(started, broker.host, int(broker.port), "3.1.1", embedded=True)
    finally:
        broker.stop()
