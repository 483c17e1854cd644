"""An embedded MQTT broker for `python -m edge demo` (amqtt in a background thread).

Loopback only, anonymous, MQTT 3.1.1 (amqtt speaks no MQTT 5), no
persistence: a demo convenience, not a production broker. Kiosks in a school
use a real broker (mosquitto, EMQX) with TLS and one user per kiosk.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from edge.errors import PublishError

if TYPE_CHECKING:
    from amqtt.broker import Broker

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def _free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """amqtt on 127.0.0.1:<port> (a free port when not given), started and stopped from any thread."""

    def __init__(
        self, port: int | None = None, host: str = LOOPBACK, start_timeout: float = 10.0
    ) -> None:
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise PublishError("embedded broker has no port yet: call start() first")
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str:
        """Start the broker; returns its URL. Raises PublishError if it cannot listen."""
        if self.running:
            return self.url
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise PublishError(
                "the embedded demo broker needs amqtt: pip install 'gaitmil-edge[demo]', or point the demo at a "
                "running broker with --broker mqtt://HOST:PORT"
            ) from None
        if self.port is None:
            self.port = _free_port(self.host)
        # amqtt and its state machine log every session transition at INFO: too loud for a demo console
        for name in ("amqtt", "transitions"):
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        loop = asyncio.new_event_loop()
        self._loop = loop
        started: Future[bool] = Future()

        async def boot() -> None:
            broker = Broker(config, loop=loop)
            self._broker = broker
            await broker.start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except Exception as exc:  # noqa: BLE001 - handed to the starting thread, which raises it
                started.set_exception(exc)
                return
            started.set_result(True)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="embedded-broker", daemon=True)
        self._thread.start()
        try:
            started.result(timeout=self.start_timeout)
        except Exception as exc:  # noqa: BLE001 - any start failure becomes one clear error
            self._cleanup_loop()
            raise PublishError(
                f"embedded broker could not listen on {self.host}:{self.port}: {exc}"
            ) from None
        log.info("embedded MQTT broker (amqtt, demo only) on %s", self.url)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop
        if self._broker is not None and self.running:
            shutdown = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
            try:
                shutdown.result(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - a failed shutdown is logged; the loop is stopped anyway
                log.warning("embedded broker shutdown: %s", exc)
        self._cleanup_loop(timeout)

    def _cleanup_loop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=timeout)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = None
        self._thread = None
        self._broker = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
