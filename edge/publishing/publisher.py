"""MQTT publisher: results through the durable outbox, status, health and the session topic.

paho-mqtt 2.x with callback API version 2, MQTT 3.1.1 or 5, `connect_async`
and `loop_start` so paho reconnects by itself with backoff.

Threads: paho's network thread runs the callbacks; they only put events on a
queue (a known paho deadlock: `on_publish` runs under a paho lock that
`publish()` also takes). One owner thread reads that queue, hands outbox rows
to paho in order (at most `inflight` unacknowledged), maps each message id
to its row and acknowledges (deletes) or parks rows. paho resends the
unacknowledged messages it holds after a reconnect; after a restart the owner
republishes every pending row, so duplicates are possible and results carry
`result_id` for de-duplication.

Faults (docs/MQTT.md "Faults"): every paho callback is guarded, so no message,
however hostile, can end paho's network thread. The owner thread's work, with
its supervision of paho's thread and its retries of failed outbox writes, is in
edge.publishing.delivery; results the outbox cannot store wait in memory
(edge.outbox.memory); the session token is held by edge.publishing.session_tokens.

Topic names and the session parser are in edge.publishing.topics; the settings (derived
from the pydantic [mqtt] and [kiosk] sections) and the paho client builder
(credentials, TLS, last will) in edge.publishing.client.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from edge.errors import PublishError
from edge.health import RateLimitedLog
from edge.outbox.memory import HeldResult, HeldResults
from edge.outbox.store import Outbox
from edge.publishing.client import (
    PublisherSettings,
    Will,
    build_client,
    describe_connect_error,
    is_auth_refusal,
)
from edge.publishing.delivery import OutboxDelivery
from edge.publishing.session_tokens import SessionTokens
from edge.publishing.topics import HEALTH_SCHEMA, STATUS_SCHEMA
from edge.screening.result import ModelIdentity, encode_result, utc_now_iso
from gaitcontract import SOFTWARE

__all__ = ["Publisher"]

log = logging.getLogger(__name__)


class Publisher(OutboxDelivery):
    """Publishes results from the outbox, retained status, health, and receives session tokens.

    `settings` comes from edge.publishing.client.publisher_settings(cfg.mqtt, cfg.kiosk, cfg.client_id).
    """

    def __init__(
        self,
        settings: PublisherSettings,
        outbox: Outbox,
        *,
        model: Mapping[str, str | int | None] | ModelIdentity | None = None,
        software: str = SOFTWARE,
        clock: Callable[[], float] = time.monotonic,
        expire_every_seconds: float = 3600.0,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.outbox = outbox
        self.model = (
            model.as_dict()
            if isinstance(model, ModelIdentity)
            else (dict(model) if model else None)
        )
        self.software = software
        self._clock = clock
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._owner: threading.Thread | None = None
        self._client: Any = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        # owned by the owner thread only
        self._by_mid: dict[int, int] = {}
        self._handed: dict[int, int] = {}  # row id -> mid
        self._held_mids: dict[int, HeldResult] = {}  # mid -> result published directly from memory
        self._last_row = 0
        self._expire_every = expire_every_seconds
        self._next_expiry = 0.0  # first check right after start
        # read by any thread (plain values, replaced atomically)
        self.connected = False
        self.auth_failed = False
        self.last_error: str | None = None
        self.counters = {
            "connects": 0,
            "disconnects": 0,
            "published": 0,
            "acked": 0,
            "parked": 0,
            "health_sent": 0,
            "health_skipped": 0,
            "session_tokens": 0,
            "session_rejected": 0,
        }
        self.counters.update(
            callback_errors=0, network_restarts=0, outbox_errors=0, published_direct=0
        )
        self.session = SessionTokens(settings.mqtt.session_token_ttl_seconds, clock, self.counters)
        self.held = HeldResults(outbox)
        self._failure: PublishError | None = None
        self._network: threading.Thread | None = None
        self._restarts: list[float] = []
        self._ack_retry: list[
            tuple[int, bool, str]
        ] = []  # acknowledgements the outbox could not record yet
        self._outbox_error: str | None = None
        self._refused = False  # the broker answered the last attempt with a refusal (CONNACK)
        self._requeued = (
            False  # parked rows are put back once per start and per connection, by the owner
        )
        self._limited = RateLimitedLog(log)

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    @outbox.setter
    def outbox(self, value: Outbox) -> None:
        # a wrapped outbox (the pipeline benchmark times it) must also get the writes retried from memory
        self._outbox = value
        held = getattr(self, "held", None)
        if held is not None:
            held.outbox = value

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (paho retries with backoff) and start the owner thread."""
        if self._client is not None:
            raise PublishError("publisher already started: call stop() before starting it again")
        s = self.settings
        if s.mqtt.protocol == "3.1.1":
            log.warning(
                "MQTT 3.1.1: a broker that refuses a publish (ACL) still acknowledges it, so such results are "
                'deleted from the outbox as delivered and lost without notice; use mqtt.protocol = "5"'
            )
        self._stopping.clear()
        self._failure = None
        self._held_mids.clear()  # message ids of an earlier client mean nothing to the new one
        self._connect_client()
        self._requeued = False
        self._owner = threading.Thread(target=self._own, name="mqtt-outbox", daemon=True)
        self._owner.start()
        log.info(
            "MQTT: connecting to %s as %s (MQTT %s)",
            s.broker,
            s.endpoint.client_id,
            s.mqtt.protocol,
        )

    def _connect_client(self) -> None:
        s = self.settings
        will = Will(self.topics.status, self._status_payload("offline"), qos=1, retain=True)
        client, connect = build_client(s.endpoint, will=will)
        client.max_inflight_messages_set(s.mqtt.inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._guard("on_connect", self._on_connect)
        client.on_disconnect = self._guard("on_disconnect", self._on_disconnect)
        client.on_publish = self._guard("on_publish", self._on_publish)
        client.on_message = self._guard("on_message", self._on_message)
        client.on_connect_fail = self._guard("on_connect_fail", self._on_connect_fail)
        self._client = client
        client.connect_async(**connect)
        client.loop_start()
        # paho offers no public handle on its network thread; this one is read once, right after it started
        self._network = getattr(client, "_thread", None)

    def failure(self) -> PublishError | None:
        """Why the publisher stopped working (owner thread failed, network thread kept dying), or None."""
        return self._failure

    def stop(self, timeout: float = 5.0) -> bool:
        """Publish retained `stopped`, disconnect cleanly (no last will) and stop the threads.

        Returns True if `stopped` was acknowledged by the broker.
        """
        client = self._client
        if client is None:
            return False
        delivered = False
        if self.connected:
            info = client.publish(
                self.topics.status, self._status_payload("stopped"), qos=1, retain=True
            )
            deadline = time.monotonic() + timeout
            while not info.is_published() and time.monotonic() < deadline and self.connected:
                time.sleep(0.01)
            delivered = info.is_published()
        self._stopping.set()
        self._events.put(("stop",))
        if self._owner is not None:
            self._owner.join(timeout=timeout)
        client = self._client  # the owner may have replaced a dead client
        client.disconnect()
        client.loop_stop()
        self._client = None
        self.connected = False
        self.session.summarise()
        lost = self.held.abandon()
        if lost:
            log.error(
                "%d result(s) held in memory were neither stored (outbox: %s) nor acknowledged by the "
                "broker and are lost with this exit; free space on the outbox disk",
                lost,
                self.held.last_error,
            )
        return delivered

    @property
    def lost_total(self) -> int:
        """Results lost in this run: refused with memory full, and (after stop) abandoned at exit."""
        return self.held.lost_total

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API the service uses ---------------------------------------------------------------

    def publish_result(self, result: Mapping[str, Any]) -> int | None:
        """Commit the result to the outbox and wake the owner; returns the row id.

        When the outbox cannot store it (disk full, read-only, budget used up) the result waits in
        memory, is published directly while connected, and None is returned; ResultLostError (a
        PublishError) when that queue is full too.
        """
        row = self.held.store(
            self.topics.result,
            encode_result(result),
            self.settings.mqtt.qos,
            str(result.get("result_id")) if result.get("result_id") else None,
        )
        self._events.put(("wake",))
        return row

    def publish_health(self, metrics: Mapping[str, Any]) -> bool:
        """QoS 0, not retained, not stored: a missed health message is replaced by the next one."""
        client = self._client
        if client is None or not self.connected:
            self.counters["health_skipped"] += 1
            return False
        body = {
            "schema": HEALTH_SCHEMA,
            "site_id": self.settings.site_id,
            "kiosk_id": self.settings.kiosk_id,
            "time": utc_now_iso(),
            **metrics,
        }
        info = client.publish(
            self.topics.health, json.dumps(body, allow_nan=False, default=str), qos=0
        )
        self.counters["health_sent"] += 1
        return info.rc == 0

    def drain(self) -> None:
        """Publish every pending row now (the owner does it; this only wakes it)."""
        self._events.put(("wake",))

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox has nothing pending and nothing in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        self.drain()
        with self._idle:
            while self.outbox.depth > 0 or len(self.held) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.1))
        return True

    def current_subject_token(self) -> str | None:
        """The pseudonymous token for the child walking now, if a dashboard set one and it has not expired."""
        return self.session.current()

    def consume_subject_token(self) -> str | None:
        """Take the token for a classified walk: a token names one child, so it is used once."""
        return self.session.consume()

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "auth_failed": self.auth_failed,
            "last_error": self.last_error,
            "broker": self.settings.broker,
            "inflight": len(self._handed) + len(self._held_mids),
            **self.counters,
            "held_in_memory": len(self.held),
            "held_error": self.held.last_error,
            "lost": self.held.lost_total,
            "outbox_error": self._outbox_error,
            "failure": str(self._failure) if self._failure is not None else None,
        }

    # -- paho callbacks: record and enqueue only -------------------------------------------------

    def _guard(self, name: str, callback: Callable[..., None]) -> Callable[..., None]:
        """paho's network thread ends on an exception from a callback: none may escape."""

        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception as exc:  # noqa: BLE001 - anything escaping would stop all delivery
                self.counters["callback_errors"] += 1
                self._limited.warning(
                    f"callback {name}",
                    "MQTT: %s failed (%s: %s); ignored, delivery goes on",
                    name,
                    type(exc).__name__,
                    exc,
                )

        return guarded

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            text = str(reason_code)
            auth = is_auth_refusal(reason_code)
            repeated = text == self.last_error
            self.connected = False
            # the reason before the flag: health readers on other threads that see auth_failed
            # must also see why
            self.last_error = text
            self.auth_failed = auth
            if not repeated:
                log.error(
                    "MQTT: broker %s refused the connection for user %s: %s%s",
                    self.settings.broker,
                    self.settings.mqtt.username or "(anonymous)",
                    text,
                    "; check mqtt.username, mqtt.password_file and the broker's ACL"
                    if auth
                    else "",
                )
            self._refused = True  # the disconnect that follows is this refusal, not a silent close
            return
        self.connected = True
        self.auth_failed = False
        self.last_error = None
        self.counters["connects"] += 1
        # retained online on every (re)connect: it is not re-sent by itself
        client.publish(self.topics.status, self._status_payload("online"), qos=1, retain=True)
        client.subscribe(self.topics.session, qos=1)
        log.info("MQTT: connected to %s", self.settings.broker)
        self._events.put(("connected",))

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its `except OSError`: the exception in flight is the reason
        text = (
            f"cannot connect: {describe_connect_error(sys.exc_info()[1], self.settings.endpoint)}"
        )
        if self.last_error != text:
            log.warning("MQTT: %s: %s; retrying with backoff", self.settings.broker, text)
        self.last_error = text

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected
        self.connected = False
        if was:
            self.counters["disconnects"] += 1
            if not self._stopping.is_set():
                self.last_error = f"disconnected: {reason_code}"
                log.warning(
                    "MQTT: lost %s (%s); paho reconnects with backoff",
                    self.settings.broker,
                    reason_code,
                )
        elif self._refused:
            self._refused = False
        elif not self._stopping.is_set():
            # closed before any CONNACK: typically plain MQTT spoken to a TLS port (or a TLS client to a plain one)
            text = (
                f"the connection closed before the broker answered ({reason_code}); "
                f"{'is this a TLS port? use mqtts:// and mqtt.tls.ca_file' if not self.settings.endpoint.tls else 'is this port TLS?'}"
            )
            if text != self.last_error:
                log.warning("MQTT: %s: %s; retrying with backoff", self.settings.broker, text)
            self.last_error = text

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._events.put(("ack", mid, reason_code.is_failure, str(reason_code)))

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self.topics.session:
            self.session.receive(message)

    def _status_payload(self, state: str) -> str:
        body = {
            "schema": STATUS_SCHEMA,
            "state": state,
            "site_id": self.settings.site_id,
            "kiosk_id": self.settings.kiosk_id,
            "time": utc_now_iso(),
            "model": self.model,
            "software": self.software,
        }
        return json.dumps(body)
