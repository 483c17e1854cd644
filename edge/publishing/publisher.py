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

Faults (docs/MQTT.md "Faults"): every paho callback is guarded
(edge.publishing.callback_guard), so no message, however hostile, can end paho's
network thread. The publisher owns a DeliveryLoop (edge.publishing.delivery): the
owner thread, with its supervision of paho's thread and its retries of failed
outbox writes, and the paho client it publishes with; results the outbox cannot store wait in memory
(edge.outbox.memory); the session token is held by edge.publishing.session_tokens.

Topic names and the session parser are in edge.publishing.topics; the settings (derived
from the pydantic [mqtt] and [kiosk] sections) and the paho client builder
(credentials, TLS, last will) in edge.publishing.client.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypedDict

from edge.errors import PublishError
from edge.health import RateLimitedLog
from edge.outbox.memory import HeldResults
from edge.outbox.store import Outbox
from edge.publishing.callback_guard import connect_guarded
from edge.publishing.client import (
    PublisherSettings,
    Will,
    build_client,
    describe_connect_error,
    is_auth_refusal,
)
from edge.publishing.delivery import DeliveryLoop
from edge.publishing.paho_types import PahoClient, ReceivedMessage
from edge.publishing.session_tokens import SessionTokens
from edge.publishing.topics import HEALTH_SCHEMA, STATUS_SCHEMA
from edge.screening.result import ModelIdentity, encode_result, utc_now_iso
from gaitcontract import SOFTWARE

if TYPE_CHECKING:
    from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["Publisher", "PublisherStats"]

log = logging.getLogger(__name__)


class Publisher:
    """Publishes results from the outbox, retained status, health, and receives session tokens.

    `settings` comes from edge.publishing.client.publisher_settings(cfg.mqtt, cfg.kiosk, cfg.client_id).
    The rows travel through its `delivery` loop (edge.publishing.delivery), which owns the outbox
    handle, the results held in memory and the paho client.
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
        self.model = (
            model.as_dict()
            if isinstance(model, ModelIdentity)
            else (dict(model) if model else None)
        )
        self.software = software
        # read by any thread (plain values, replaced atomically)
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
        self.delivery = DeliveryLoop(
            outbox,
            self._new_client,
            inflight=settings.mqtt.inflight,
            counters=self.counters,
            expire_every_seconds=expire_every_seconds,
            on_network_lost=self._on_network_lost,
        )
        self._refused = False  # the broker answered the last attempt with a refusal (CONNACK)
        self._limited = RateLimitedLog(log)

    @property
    def outbox(self) -> Outbox:
        return self.delivery.outbox

    @outbox.setter
    def outbox(self, value: Outbox) -> None:
        # a wrapped outbox (the pipeline benchmark times it); the loop hands it to the held results too
        self.delivery.outbox = value

    @property
    def held(self) -> HeldResults:
        """Results the outbox could not store, waiting in memory (owned by the delivery loop)."""
        return self.delivery.held

    @property
    def connected(self) -> bool:
        """The delivery loop's flag: it hands rows to paho only while connected; this
        publisher's on_connect / on_disconnect keep it."""
        return self.delivery.connected

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (paho retries with backoff) and start the delivery loop."""
        self.delivery.start()  # PublishError when already started
        s = self.settings
        if s.mqtt.protocol == "3.1.1":
            log.warning(
                "MQTT 3.1.1: a broker that refuses a publish (ACL) still acknowledges it, so such results are "
                'deleted from the outbox as delivered and lost without notice; use mqtt.protocol = "5"'
            )
        log.info(
            "MQTT: connecting to %s as %s (MQTT %s)",
            s.broker,
            s.endpoint.client_id,
            s.mqtt.protocol,
        )

    def _new_client(self) -> PahoClient:
        """A paho client with this publisher's last will and callbacks, connecting in the background."""
        s = self.settings
        will = Will(self.topics.status, self._status_payload("offline"), qos=1, retain=True)
        client, connect = build_client(s.endpoint, will=will)
        client.max_inflight_messages_set(s.mqtt.inflight)
        client.max_queued_messages_set(0)
        connect_guarded(
            client,
            connect,
            self._callback_failed,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_message=self._on_message,
            on_publish=self._on_publish,
            on_connect_fail=self._on_connect_fail,
        )
        return client

    def _on_network_lost(self) -> None:
        """The delivery loop found paho's network thread dead and connects a new client."""
        log.error(
            "MQTT: paho's network thread ended unexpectedly; connecting a new client to %s "
            "(unacknowledged rows are published again)",
            self.settings.broker,
        )
        self.last_error = "network thread ended; reconnecting"

    def failure(self) -> PublishError | None:
        """Why the publisher stopped working (owner thread failed, network thread kept dying), or None."""
        return self.delivery.failure

    def stop(self, timeout: float = 5.0) -> bool:
        """Publish retained `stopped`, disconnect cleanly (no last will) and stop the threads.

        Returns True if `stopped` was acknowledged by the broker.
        """
        client = self.delivery.client
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
        self.delivery.stop(timeout)
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

    def publish_result(self, result: Mapping[str, object]) -> int | None:
        """Commit the result to the outbox and wake the delivery loop; returns the row id.

        When the outbox cannot store it (disk full, read-only, budget used up) the result waits in
        memory, is published directly while connected, and None is returned; ResultLostError (a
        PublishError) when that queue is full too.
        """
        return self.delivery.submit(
            self.topics.result,
            encode_result(result),
            self.settings.mqtt.qos,
            str(result.get("result_id")) if result.get("result_id") else None,
        )

    def publish_health(self, metrics: Mapping[str, object]) -> bool:
        """QoS 0, not retained, not stored: a missed health message is replaced by the next one."""
        client = self.delivery.client
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
        """Publish every pending row now (the delivery loop does it; this only wakes it)."""
        self.delivery.notify_new_row()

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox has nothing pending and nothing in flight; False on timeout."""
        return self.delivery.flush(timeout)

    def current_subject_token(self) -> str | None:
        """The pseudonymous token for the child walking now, if a dashboard set one and it has not expired."""
        return self.session.current()

    def consume_subject_token(self) -> str | None:
        """Take the token for a classified walk: a token names one child, so it is used once."""
        return self.session.consume()

    def stats(self) -> PublisherStats:
        c = self.counters
        failure = self.delivery.failure
        return {
            "connected": self.connected,
            "auth_failed": self.auth_failed,
            "last_error": self.last_error,
            "broker": self.settings.broker,
            "inflight": self.delivery.in_flight,
            "connects": c["connects"],
            "disconnects": c["disconnects"],
            "published": c["published"],
            "acked": c["acked"],
            "parked": c["parked"],
            "health_sent": c["health_sent"],
            "health_skipped": c["health_skipped"],
            "session_tokens": c["session_tokens"],
            "session_rejected": c["session_rejected"],
            "callback_errors": c["callback_errors"],
            "network_restarts": c["network_restarts"],
            "outbox_errors": c["outbox_errors"],
            "published_direct": c["published_direct"],
            "held_in_memory": len(self.held),
            "held_error": self.held.last_error,
            "lost": self.held.lost_total,
            "outbox_error": self.delivery.outbox_error,
            "failure": str(failure) if failure is not None else None,
        }

    # -- paho callbacks: record and enqueue only -------------------------------------------------

    def _callback_failed(self, name: str, exc: Exception) -> None:
        """A callback raised (edge.publishing.callback_guard caught it): counted, logged, ignored."""
        self.counters["callback_errors"] += 1
        self._limited.warning(
            f"callback {name}",
            "MQTT: %s failed (%s: %s); ignored, delivery goes on",
            name,
            type(exc).__name__,
            exc,
        )

    def _on_connect(
        self,
        client: PahoClient,
        userdata: object,
        flags: object,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        if reason_code.is_failure:
            text = str(reason_code)
            auth = is_auth_refusal(reason_code)
            repeated = text == self.last_error
            self.delivery.connected = False
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
        self.delivery.connected = True
        self.auth_failed = False
        self.last_error = None
        self.counters["connects"] += 1
        # retained online on every (re)connect: it is not re-sent by itself
        client.publish(self.topics.status, self._status_payload("online"), qos=1, retain=True)
        client.subscribe(self.topics.session, qos=1)
        log.info("MQTT: connected to %s", self.settings.broker)
        self.delivery.on_connected()

    def _on_connect_fail(self, client: PahoClient, userdata: object) -> None:
        # paho calls this inside its `except OSError`: the exception in flight is the reason
        text = (
            f"cannot connect: {describe_connect_error(sys.exc_info()[1], self.settings.endpoint)}"
        )
        if self.last_error != text:
            log.warning("MQTT: %s: %s; retrying with backoff", self.settings.broker, text)
        self.last_error = text

    def _on_disconnect(
        self,
        client: PahoClient,
        userdata: object,
        flags: object,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        was = self.connected
        self.delivery.connected = False
        if was:
            self.counters["disconnects"] += 1
            if not self.delivery.stopping:
                self.last_error = f"disconnected: {reason_code}"
                log.warning(
                    "MQTT: lost %s (%s); paho reconnects with backoff",
                    self.settings.broker,
                    reason_code,
                )
        elif self._refused:
            self._refused = False
        elif not self.delivery.stopping:
            # closed before any CONNACK: typically plain MQTT spoken to a TLS port (or a TLS client to a plain one)
            text = (
                f"the connection closed before the broker answered ({reason_code}); "
                f"{'is this a TLS port? use mqtts:// and mqtt.tls.ca_file' if not self.settings.endpoint.tls else 'is this port TLS?'}"
            )
            if text != self.last_error:
                log.warning("MQTT: %s: %s; retrying with backoff", self.settings.broker, text)
            self.last_error = text

    def _on_publish(
        self,
        client: PahoClient,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self.delivery.on_publish_ack(mid, reason_code)

    def _on_message(self, client: PahoClient, userdata: object, message: ReceivedMessage) -> None:
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


class PublisherStats(TypedDict):
    """`Publisher.stats()`: the link, the counters, and what waits or failed (the health topic's `mqtt`)."""

    connected: bool
    auth_failed: bool
    last_error: str | None
    broker: str
    inflight: int
    connects: int
    disconnects: int
    published: int
    acked: int
    parked: int
    health_sent: int
    health_skipped: int
    session_tokens: int
    session_rejected: int
    callback_errors: int
    network_restarts: int
    outbox_errors: int
    published_direct: int
    held_in_memory: int
    held_error: str | None
    lost: int
    outbox_error: str | None
    failure: str | None
