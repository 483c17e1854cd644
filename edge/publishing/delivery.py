"""The publisher's owner thread: outbox rows to paho in order, acknowledgements back to the outbox.

One thread (started by edge.publishing.publisher.Publisher) reads the events paho's callbacks
queue, hands pending rows to paho (at most `inflight` unacknowledged), maps each
message id to its row and deletes or parks the row when the broker answers. It
also retries results held in memory, runs the hourly expiry, puts parked rows
back once per start and per (re)connection (rows parked fewer than
AUTO_REQUEUE_MAX_PARKS times), and watches paho's network thread: should it end, a new
client is connected and what was in flight is published again, at most
NETWORK_RESTARTS times in NETWORK_RESTART_WINDOW_S, after which `failure()` is set.
Results the outbox could not store (edge.outbox.memory) are published directly
while connected (QoS 1, at most `inflight` in flight together with outbox rows)
and leave memory when the broker acknowledges them, so a disk that stays full
to the end of a run loses nothing while the broker is reachable.
An outbox write that fails (full or read-only disk) is retried on the next tick
with the same acknowledgement; a corrupt outbox ends the thread with `failure()`
set, and the kiosk loop ends the run.

A mixin: the state it uses (`_events`, `_by_mid`, `_handed`, `held`, `outbox`,
`counters`, the client) belongs to the Publisher.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.errors import PublishError
from edge.outbox.store import AUTO_REQUEUE_MAX_PARKS, Outbox, OutboxCorruptError

if TYPE_CHECKING:
    from edge.health import RateLimitedLog
    from edge.outbox.memory import HeldResult, HeldResults
    from edge.publishing.client import PublisherSettings

log = logging.getLogger("edge.publishing.publisher")

NETWORK_RESTARTS = 5  # new paho clients allowed within the window before the run ends with an error
NETWORK_RESTART_WINDOW_S = 600.0


class OutboxDelivery:
    """The owner thread's work, mixed into edge.publishing.publisher.Publisher."""

    # the Publisher's state this mixin reads and writes (set in Publisher.__init__)
    settings: PublisherSettings
    outbox: Outbox
    held: HeldResults
    counters: dict[str, int]
    connected: bool
    last_error: str | None
    _client: Any  # paho.mqtt.client.Client; replaced when paho's network thread died
    _events: queue.Queue[tuple[Any, ...]]
    _idle: threading.Condition
    _stopping: threading.Event
    _limited: RateLimitedLog
    _failure: PublishError | None
    _network: threading.Thread | None
    _restarts: list[float]
    _ack_retry: list[tuple[int, bool, str]]
    _outbox_error: str | None
    _requeued: bool
    _by_mid: dict[int, int]
    _handed: dict[int, int]
    _held_mids: dict[int, HeldResult]  # mid -> a result published directly from memory
    _last_row: int
    _expire_every: float
    _next_expiry: float

    def _connect_client(self) -> None:
        raise NotImplementedError(
            "OutboxDelivery is a mixin: the class using it connects the paho client"
        )

    def _own(self) -> None:
        try:
            self._own_loop()
        except Exception as exc:  # noqa: BLE001 - recorded for the kiosk loop, which stops the run
            log.exception("MQTT: the outbox thread failed")
            self._failure = PublishError(f"the outbox thread stopped: {type(exc).__name__}: {exc}")
            with self._idle:
                self._idle.notify_all()

    def _own_loop(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=0.5)
            except queue.Empty:
                event = ("tick",)
            if event[0] == "stop":
                self._step(self.held.retry)
                return
            if event[0] == "connected":
                # a new connection: the broker's ACL or accounts may have been fixed
                self._requeued = False
            if event[0] == "ack":
                mid, failed, reason = event[1:]
                self._ack_retry.append((mid, failed, reason))
            # each step on its own: a failing delete must not stop new rows from being handed to paho
            steps = (
                self._requeue_once,
                self._record_acks,
                self._check_network,
                self.held.retry,
                self._expire_when_due,
                self._hand_rows,
                self._hand_held,
            )
            if all([self._step(step) for step in steps]):
                self._outbox_error = None
            if self._failure is not None:
                return
            with self._idle:
                self._idle.notify_all()

    def _step(self, step: Callable[[], object]) -> bool:
        """Run one step; a full or read-only disk is retried on the next tick (False), corruption is raised."""
        try:
            step()
            return True
        except OutboxCorruptError:
            raise  # does not heal by retrying: the run ends, the start-up check names it
        except PublishError as exc:
            self.counters["outbox_errors"] += 1
            self._outbox_error = str(exc)
            self._limited.warning("owner outbox", "MQTT: outbox work failed (%s); retrying", exc)
            return False

    def _requeue_once(self) -> None:
        if self._requeued:
            return
        # rows refused before this start or connection get another chance, a bounded number of times
        moved = self.outbox.requeue_parked(max_parks=AUTO_REQUEUE_MAX_PARKS)
        self._requeued = True
        if moved:
            log.warning(
                "outbox: %d parked row(s) put back for another try (start or reconnect)", moved
            )

    def _record_acks(self) -> None:
        # in order; an entry leaves the list only once the outbox recorded it
        while self._ack_retry:
            self._acknowledged(*self._ack_retry[0])
            self._ack_retry.pop(0)

    def _expire_when_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_expiry:
            self._next_expiry = now + self._expire_every
            self.outbox.expire()  # privacy: undelivered results do not linger

    def _check_network(self) -> None:
        """paho's thread should never end while we run; if it did, start a new client (bounded)."""
        thread = self._network
        if thread is None or thread.is_alive() or self._stopping.is_set():
            return
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < NETWORK_RESTART_WINDOW_S] + [now]
        if len(self._restarts) > NETWORK_RESTARTS:
            self._failure = PublishError(
                f"MQTT: paho's network thread ended {len(self._restarts)} times within "
                f"{NETWORK_RESTART_WINDOW_S:.0f} s; giving up (results stay in the outbox for the next start)"
            )
            self._network = None
            return
        self.counters["network_restarts"] += 1
        log.error(
            "MQTT: paho's network thread ended unexpectedly; connecting a new client to %s "
            "(unacknowledged rows are published again)",
            self.settings.broker,
        )
        old = self._client
        self.connected = False
        self.last_error = "network thread ended; reconnecting"
        self._by_mid.clear()
        self._handed.clear()
        self._held_mids.clear()
        self.held.forget_mids()
        self._ack_retry.clear()
        try:
            old.disconnect()
        except (OSError, ValueError) as exc:
            log.debug("MQTT: closing the dead client: %s", exc)
        self._connect_client()

    def _acknowledged(self, mid: int, failed: bool, reason: str) -> None:
        entry = self._held_mids.pop(mid, None)
        if entry is not None:  # a result the outbox could not store, published directly
            if failed:
                self.held.refused(entry, reason)
                self.counters["parked"] += 1
            else:
                self.held.delivered(entry)
                self.counters["acked"] += 1
            return
        row = self._by_mid.get(mid)
        if row is None:
            return  # status/health or a message of an earlier connection
        # the maps change only once the outbox recorded it: a failed write is retried with the same ack
        if failed:
            self.outbox.park(row, reason)
            self.counters["parked"] += 1
        else:
            self.outbox.ack(row)
            self.counters["acked"] += 1
        self._by_mid.pop(mid, None)
        self._handed.pop(row, None)

    def _hand_rows(self) -> None:
        client = self._client
        if client is None or not self.connected:
            return
        if not self._handed:
            # nothing in flight: every pending row needs publishing, including rows put back by
            # Outbox.requeue_parked() behind the cursor
            self._last_row = 0
        room = self.settings.mqtt.inflight - len(self._handed)
        if room <= 0:
            return
        for row in self.outbox.pending(limit=room, after_id=self._last_row):
            info = client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            # rc 4 = no connection: paho queued it and sends it after reconnecting
            if info.rc not in (0, 4):
                log.warning(
                    "MQTT: publish of outbox row %d failed (%s); will retry", row.row_id, info.rc
                )
                break
            self._by_mid[info.mid] = row.row_id
            self._handed[row.row_id] = info.mid
            self._last_row = row.row_id
            self.counters["published"] += 1

    def _hand_held(self) -> None:
        """Publish results waiting in memory directly while connected: the disk may stay full to the end."""
        client = self._client
        if client is None or not self.connected or len(self.held) == 0:
            return
        room = self.settings.mqtt.inflight - len(self._handed) - len(self._held_mids)
        for entry in self.held.to_publish(room):
            # QoS 1 at least: only the broker's acknowledgement lets a result leave memory
            info = client.publish(entry.topic, entry.payload, qos=max(entry.qos, 1), retain=False)
            if info.rc not in (0, 4):
                log.warning(
                    "MQTT: direct publish of held result %s failed (%s); will retry",
                    entry.message_id,
                    info.rc,
                )
                break
            self._held_mids[info.mid] = entry
            self.held.handed(entry, info.mid)
            self.counters["published_direct"] += 1
