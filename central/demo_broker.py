"""The in-process MQTT broker of `python -m central demo` only (demobroker: amqtt, loopback,
anonymous, MQTT 3.1.1, nothing on disk). Districts run mosquitto or EMQX (docs/CENTRAL.md)."""

from __future__ import annotations

import demobroker
from central.errors import CentralError


class DemoBroker(demobroker.EmbeddedBroker):
    """demobroker's broker, failing with CentralError so the central CLI reports it as one line."""

    error = CentralError
    thread_name = "central-demo-broker"


__all__ = ["DemoBroker"]
