"""The embedded MQTT broker of `python -m edge demo` (demobroker: amqtt in a background thread).

Loopback only, anonymous, MQTT 3.1.1, no persistence: a demo convenience, not a production
broker. Kiosks in a school use a real broker (mosquitto, EMQX) with TLS and one user per kiosk.
"""

from __future__ import annotations

import demobroker
from edge.errors import PublishError


class EmbeddedBroker(demobroker.EmbeddedBroker):
    """demobroker's broker, failing with the kiosk's PublishError like the rest of publishing."""

    error = PublishError
    instead = "point the demo at a running broker with --broker mqtt://HOST:PORT"


__all__ = ["EmbeddedBroker"]
