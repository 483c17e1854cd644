"""The publisher's delivery loop: outbox rows to paho in order, acknowledgements back to the outbox.

`DeliveryLoop` owns one thread (the owner) that reads the events paho's callbacks
queue, hands pending rows to paho (at most `inflight` unacknowledged), maps each
message id to its row and deletes or parks the row when the broker answers. It
also retries results held in memory, runs the hourly expiry, puts parked rows
back once per start and per (re)connection (rows parked fewer than
AUTO_REQUEUE_MAX_PARKS times), and watches paho's network thread: should it end, a new
client is connected and what was in flight is published again, at most
NETWORK_RESTARTS times in NETWORK_RESTART_WINDOW_S, after which `failure` is set.
Results the outbox could not store (edge.outbox.memory) are published directly
while connected (QoS 1, at most `inflight` in flight together with outbox rows)
and leave memory when the broker acknowledges them, so a disk that stays full
to the end of a run loses nothing while the broker is reachable.
An outbox write that fails (full or read-only disk) is retried on the next tick
with the same acknowledgement; a corrupt outbox ends the thread with `failure`
set, and the kiosk loop ends the run.

Its interface: `start`/`stop`; `submit` (store a result and wake the owner) and
`notify_new_row`; what paho's callbacks report, `on_connected` and
`on_publish_ack`, plus the `connected` flag the publisher's callbacks keep;
`flush`. It gets its paho client from `connect`, a function that returns a client
already connecting (edge.publishing.publisher.Publisher builds it with its
callbacks); `on_network_lost` lets the publisher record why the link dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from edge.errors import PublishError
from edge.health import RateLimitedLog
from edge.outbox.memory import HeldResult, HeldResults
from edge.outbox.store import AUTO_REQUEUE_MAX_PARKS, Outbox, OutboxCorruptError
from edge.publishing.paho_types import MQTT_ERR_NO_CONN, MQTT_ERR_SUCCESS, PahoClient

if TYPE_CHECKING:
    from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["NETWORK_RESTARTS", "NETWORK_RESTART_WINDOW_S", "DeliveryLoop"]

log = logging.getLogger("edge.publishing.publisher")  # the publisher's logger: one MQTT story

NETWORK_RESTARTS = 5  # new paho clients allowed within the window before the run ends with an error
NETWORK_RESTART_WINDOW_S = 600.0
EXPIRE_EVERY_S = 3600.0


class _Event(NamedTuple):
    """What the owner thread is woken for: wake, tick, connected, ack (with mid and reason), stop."""

    kind: str
    mid: int = 0
    failed: bool = False
    reason: str = ""


def network_thread(client: object) -> threading.Thread | None:
    """paho's network thread, read once right after `loop_start` (paho offers no public handle)."""
    thread = getattr(client, "_thread", None)
    return thread if isinstance(thread, threading.Thread) else None


class DeliveryLoop:
    """Moves rows from `outbox` (and results held in memory) to the broker; see the module docstring."""

    def __init__(
        self,
        outbox: Outbox,
        connect: Callable[[], PahoClient],
        *,
        inflight: int,
        counters: dict[str, int] | None = None,
        expire_every_seconds: float = EXPIRE_EVERY_S,
        on_network_lost: Callable[[], None] | None = None,
    ) -> None:
        self.held = HeldResults(outbox)
        self._outbox = outbox
        self._connect = connect
        self.inflight = inflight
        # shared with the publisher (its stats); the keys this loop counts are made sure of here
        self.counters = counters if counters is not None else {}
        for key in (
            "published",
            "acked",
            "parked",
            "network_restarts",
            "outbox_errors",
            "published_direct",
        ):
            self.counters.setdefault(key, 0)
        self._on_network_lost = on_network_lost
        # read by any thread (plain values, replaced atomically)
        self.client: PahoClient | None = None
        self.connected = False  # kept by the publisher's on_connect / on_disconnect
        self.failure: PublishError | None = None
        self.outbox_error: str | None = None
        self._events: queue.Queue[_Event] = queue.Queue()
        self._owner: threading.Thread | None = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._limited = RateLimitedLog(log)
        # owned by the owner thread only
        self._by_mid: dict[int, int] = {}
        self._handed: dict[int, int] = {}  # row id -> mid
        self._held_mids: dict[int, HeldResult] = {}  # mid -> result published directly from memory
        self._last_row = 0
        self._expire_every = expire_every_seconds
        self._next_expiry = 0.0  # first check right after start
        self._network: threading.Thread | None = None
        self._restarts: list[float] = []
        self._ack_retry: list[_Event] = []  # acknowledgements the outbox could not record yet
        self._requeued = False  # parked rows are put back once per start and per connection

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    @outbox.setter
    def outbox(self, value: Outbox) -> None:
        # a wrapped outbox (the pipeline benchmark times it) must also get the writes retried from memory
        self._outbox = value
        self.held.outbox = value

    @property
    def thread(self) -> threading.Thread | None:
        """The owner thread while started."""
        return self._owner

    @property
    def stopping(self) -> bool:
        """stop() was called: a disconnect now is the clean one."""
        return self._stopping.is_set()

    @property
    def in_flight(self) -> int:
        """Messages handed to paho and not yet acknowledged (outbox rows and held results)."""
        return len(self._handed) + len(self._held_mids)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Get a connecting client from `connect` and start the owner thread."""
        if self.client is not None:
            raise PublishError("publisher already started: call stop() before starting it again")
        self._stopping.clear()
        self.failure = None
        self._held_mids.clear()  # message ids of an earlier client mean nothing to the new one
        self._connect_client()
        self._requeued = False
        self._owner = threading.Thread(target=self._own, name="mqtt-outbox", daemon=True)
        self._owner.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the owner thread (after one last retry of held results), disconnect and stop paho."""
        self._stopping.set()
        self._events.put(_Event("stop"))
        if self._owner is not None:
            self._owner.join(timeout=timeout)
        client = self.client  # the owner may have replaced a dead client
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self.client = None
        self.connected = False

    def _connect_client(self) -> None:
        client = self._connect()
        self.client = client
        self._network = network_thread(client)

    # -- what the publisher and paho's callbacks report -----------------------------------------

    def submit(self, topic: str, payload: bytes, qos: int, message_id: str | None) -> int | None:
        """Commit a result to the outbox (or hold it in memory: None) and wake the owner.

        ResultLostError (edge.outbox.memory) when the outbox cannot store it and memory is full."""
        row = self.held.store(topic, payload, qos, message_id)
        self.notify_new_row()
        return row

    def notify_new_row(self) -> None:
        """Rows may be waiting: the owner publishes them now instead of at its next tick."""
        self._events.put(_Event("wake"))

    def on_connected(self) -> None:
        """A new connection (paho's thread): the broker's ACL or accounts may have been fixed."""
        self._events.put(_Event("connected"))

    def on_publish_ack(self, mid: int, reason_code: ReasonCode) -> None:
        """The broker answered the publish `mid` (paho's thread): recorded by the owner."""
        self._events.put(_Event("ack", mid, reason_code.is_failure, str(reason_code)))

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox has nothing pending and nothing waits in memory; False on timeout."""
        deadline = time.monotonic() + timeout
        self.notify_new_row()
        with self._idle:
            while self.outbox.depth > 0 or len(self.held) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.1))
        return True

    # -- the owner thread -----------------------------------------------------------------------

    def _own(self) -> None:
        try:
            self._own_loop()
        except Exception as exc:  # noqa: BLE001 - recorded for the kiosk loop, which stops the run
            log.exception("MQTT: the outbox thread failed")
            self.failure = PublishError(f"the outbox thread stopped: {type(exc).__name__}: {exc}")
            with self._idle:
                self._idle.notify_all()

    def _own_loop(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=0.5)
            except queue.Empty:
                event = _Event("tick")
            if event.kind == "stop":
                self._step(self.held.retry)
                return
            if event.kind == "connected":
                self._requeued = False
            if event.kind == "ack":
                self._ack_retry.append(event)
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
                self.outbox_error = None
            if self.failure is not None:
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
            self.outbox_error = str(exc)
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
            ack = self._ack_retry[0]
            self._acknowledged(ack.mid, ack.failed, ack.reason)
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
            self.failure = PublishError(
                f"MQTT: paho's network thread ended {len(self._restarts)} times within "
                f"{NETWORK_RESTART_WINDOW_S:.0f} s; giving up (results stay in the outbox for the next start)"
            )
            self._network = None
            return
        self.counters["network_restarts"] += 1
        old = self.client
        self.connected = False
        if self._on_network_lost is not None:
            self._on_network_lost()
        self._by_mid.clear()
        self._handed.clear()
        self._held_mids.clear()
        self.held.forget_mids()
        self._ack_retry.clear()
        if old is not None:
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
        client = self.client
        if client is None or not self.connected:
            return
        if not self._handed:
            # nothing in flight: every pending row needs publishing, including rows put back by
            # Outbox.requeue_parked() behind the cursor
            self._last_row = 0
        room = self.inflight - len(self._handed)
        if room <= 0:
            return
        for row in self.outbox.pending(limit=room, after_id=self._last_row):
            info = client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            # no connection: paho queued it and sends it after reconnecting
            if info.rc not in (MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN):
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
        client = self.client
        if client is None or not self.connected or len(self.held) == 0:
            return
        room = self.inflight - len(self._handed) - len(self._held_mids)
        for entry in self.held.to_publish(room):
            # QoS 1 at least: only the broker's acknowledgement lets a result leave memory
            info = client.publish(entry.topic, entry.payload, qos=max(entry.qos, 1), retain=False)
            if info.rc not in (MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN):
                log.warning(
                    "MQTT: direct publish of held result %s failed (%s); will retry",
                    entry.message_id,
                    info.rc,
                )
                break
            self._held_mids[info.mid] = entry
            self.held.handed(entry, info.mid)
            self.counters["published_direct"] += 1
