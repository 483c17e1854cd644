"""An in-process MQTT broker for `python -m central demo` only (amqtt: loopback, anonymous,
MQTT 3.1.1, nothing on disk). Districts run mosquitto or EMQX (docs/CENTRAL.md)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import Future
from typing import Any

from central.errors import CentralError


class DemoBroker:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise CentralError(
                "the demo's embedded broker needs amqtt: pip install 'gaitmil-edge[demo]'"
            ) from None
        for name in ("amqtt", "transitions"):  # they log every session change at INFO
            logging.getLogger(name).setLevel(logging.WARNING)
        with socket.socket() as s:
            s.bind((self.host, 0))
            self.port = s.getsockname()[1]
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        loop = self._loop = asyncio.new_event_loop()
        ready: Future = Future()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except Exception as exc:  # noqa: BLE001 - reported to the starting thread
                ready.set_exception(exc)
                return
            ready.set_result(None)
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="central-demo-broker", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout)
        except Exception as exc:  # noqa: BLE001 - one clear error for any start failure
            raise CentralError(f"the demo broker could not listen on {self.url}: {exc}") from None
        return self.url

    def stop(self) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        except Exception as exc:  # noqa: BLE001 - stopping a demo must not hide the real exit code
            logging.getLogger(__name__).warning("demo broker shutdown: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._broker = None
