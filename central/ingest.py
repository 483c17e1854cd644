"""The ingest: MQTT messages in, database rows out, acknowledged only once committed.

paho's network thread only queues each message (with the connection it came
on); one writer thread stores batches in a transaction and then sends the
PUBACKs. A message whose commit failed is never acknowledged: the broker
redelivers it (persistent session), and the unique result_id absorbs the
copies. Acks for messages received on an earlier connection are not sent: the
broker has already redelivered those on the new one.

No message can stop it (issue 23): store_message quarantines whatever one
message raises. If a batch's commit still fails while the database answers,
the batch is retried a few times, then split in halves until the one message
that fails alone is quarantined in a transaction of its own; only while the
database does not answer is the batch kept and retried without end.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from central.contract import subscriptions
from central.db import begin_write
from central.errors import CentralError
from central.mqtt_link import BrokerSettings, build_client, is_auth_refusal
from central.plausibility import IngestPolicy
from central.store import (
    STORE_FAILED,
    UNAVAILABLE,
    Stored,
    StoreOutcome,
    quarantine_row,
    store_message,
)

log = logging.getLogger(__name__)

BATCH = 200
BATCH_WAIT_S = 0.02
LATENCY_WINDOW = 5000
BATCH_TRIES = 3  # commits of a whole batch while the database answers, before it is split
PART_TRIES = 2  # commits of each half (a deadlock between workers may fail one once)
# while the database answers but reports a lock, a deadlock or a lost connection
TRANSIENT_TRIES = 10
QUARANTINE_LOG_S = 10.0  # at most one quarantine warning per this many seconds


class DatabaseDown(CentralError):
    """The database does not answer: keep the batch unacknowledged and retry it."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    arrived: float  # time.monotonic()


def _kiosk_key(topic: str) -> tuple[int, str]:
    """Sort key: results and junk first (as received), then status/health by kiosk topic."""
    root, _, kind = topic.rpartition("/")
    return (1, root) if kind in ("status", "health") else (0, "")


class Ingest:
    """Subscribe to every kiosk's result/status/health and store them; also publishes session tokens."""

    def __init__(
        self,
        settings: BrokerSettings,
        sessions: sessionmaker[Session],
        policy: IngestPolicy | None = None,
    ) -> None:
        settings.check()
        self.policy = policy or IngestPolicy()
        self.policy.check()
        self.settings = settings
        self.sessions = sessions
        self.counts: Counter[str] = Counter()
        self.store_latency_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)  # receipt -> commit
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._queue: queue.Queue[Message] = queue.Queue()
        self._generation = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client: Any = None
        self._writer: threading.Thread | None = None
        # called by the writer after each commit, before the acks (benchmarks time commits by it)
        self._quarantine_logged_at = -QUARANTINE_LOG_S
        self._quarantine_unlogged = 0
        self.on_committed: Callable[[list[tuple[Message, StoreOutcome]]], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, wait: float | None = 10.0) -> None:
        client, connect = build_client(self.settings, self.settings.client_id, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        self._stop.clear()
        self._writer = threading.Thread(
            target=self._supervise, name="central-ingest-writer", daemon=True
        )
        self._writer.start()
        client.connect_async(**connect)
        client.loop_start()
        if wait is not None and not self.connected.wait(wait):
            raise CentralError(
                f"ingest could not subscribe on {self.settings.url} within {wait:.0f} s"
                + (f" ({self.last_error})" if self.last_error else "")
                + "; is the broker running and the URL right?"
            )

    def stop(self, drain_s: float = 5.0) -> None:
        """Store what has arrived (up to drain_s), then disconnect; unstored messages stay with the broker."""
        deadline = time.monotonic() + drain_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=10)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        """QoS 1, never retained (a retained session token would be re-applied to another child)."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise CentralError(
                f"not connected to the broker {self.settings.url}: the token was not sent; try again"
            )
        info = client.publish(topic, payload, qos=1, retain=False)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise CentralError(
                f"the broker {self.settings.url} did not acknowledge {topic} within {timeout:.0f} s"
            )

    # -- paho callbacks (network thread): only queue ----------------------------------------------

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            hint = (
                "; check --mqtt-user and --mqtt-password-file"
                if is_auth_refusal(reason_code)
                else ""
            )
            self.last_error = f"{reason_code}{hint}"
            log.error("ingest: %s refused the connection: %s", self.settings.url, self.last_error)
            return
        with self._lock:
            self._generation += 1
        filters = subscriptions(self.settings.topic_prefix, self.settings.share_group)
        client.subscribe([(f, 1) for f in filters])

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            self.last_error = (
                f"subscription refused: {', '.join(refused)} (check the broker's ACL for this user)"
            )
            log.error("ingest: %s %s", self.settings.url, self.last_error)
            return
        self.connected.set()
        log.info("ingest: subscribed on %s as %s", self.settings.url, self.settings.client_id)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.connected.clear()
        self.counts["disconnects"] += 1
        if not self._stop.is_set():
            log.warning("ingest: lost %s (%s); paho reconnects", self.settings.url, reason_code)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.counts["received"] += 1
        try:
            name = message.topic
        except (
            UnicodeDecodeError
        ):  # brokers check topics are UTF-8; keep the message if one did not
            name = bytes(message._topic).decode("utf-8", "replace")
        self._queue.put(
            Message(
                name,
                bytes(message.payload),
                message.mid,
                message.qos,
                self._generation,
                time.monotonic(),
            )
        )

    # -- writer thread ---------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self._write_loop()
            except Exception:  # noqa: BLE001 - the writer must never die; log and go on
                log.exception("ingest writer failed; restarting it in 1 s")
                self.counts["writer_restarts"] += 1
                time.sleep(1.0)

    def _take_batch(self) -> list[Message]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + BATCH_WAIT_S
        while len(batch) < BATCH:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        pending: list[Message] = []
        while not self._stop.is_set():
            batch = pending or self._take_batch()
            pending = []
            if not batch:
                continue
            try:
                outcomes = self._commit(batch, BATCH_TRIES)
            except DatabaseDown as exc:
                # Not acknowledged: keep the batch and retry; if we die, the broker redelivers it.
                self.last_error = str(exc)
                log.error("ingest: %s; retrying %d message(s)", exc, len(batch))
                pending = batch
                time.sleep(0.5 + random.random())  # jitter: two workers that collided retry apart
                continue
            done = time.monotonic()
            if self.on_committed is not None:
                try:
                    self.on_committed(outcomes)
                except Exception:  # noqa: BLE001 - an observer must not cost the acks
                    log.exception("ingest: the on_committed observer failed")
            for message, outcome in outcomes:
                kind = outcome.kind
                self.counts[kind.value] += 1
                if outcome.quarantine_kind:
                    self.counts[f"quarantined_{outcome.quarantine_kind}"] += 1
                if outcome.flags:
                    self.counts["flagged"] += 1
                if kind in (Stored.NEW, Stored.DUPLICATE):
                    self.store_latency_ms.append((done - message.arrived) * 1000.0)
            self._ack(batch)

    def _database_answers(self) -> bool:
        try:
            with self.sessions() as session:
                session.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure of the probe means "not answering"
            return False

    def _commit(self, batch: list[Message], tries: int) -> list[tuple[Message, StoreOutcome]]:
        """Store `batch`; split it while its commit fails and the database answers.

        Raises DatabaseDown when the database does not answer (nothing is then acknowledged).
        """
        failure: Exception | None = None
        attempt = 0
        while True:
            try:
                return list(zip(batch, self._store(batch)))
            except Exception as exc:  # noqa: BLE001 - judged below: the database or the batch
                failure = exc
                self.counts["db_errors"] += 1
                self.last_error = f"database: {exc.__class__.__name__}: {exc}"
                if not self._database_answers():
                    raise DatabaseDown(
                        f"the database does not answer ({exc.__class__.__name__}: {exc})"
                    ) from exc
            attempt += 1
            # A lock, a deadlock or a dropped connection is the database's state, not the
            # batch's: it gets more tries (and longer pauses) before the batch is split.
            transient = isinstance(failure, UNAVAILABLE)
            limit = TRANSIENT_TRIES if transient else tries
            log.warning(
                "ingest: committing %d message(s) failed (%s: %s), try %d of %d",
                len(batch),
                failure.__class__.__name__,
                failure,
                attempt,
                limit,
            )
            if attempt >= limit:
                break
            pause = random.uniform(0.5, 1.5) if transient else random.uniform(0.02, 0.1) * attempt
            time.sleep(pause)
        if len(batch) == 1:
            return [(batch[0], self._quarantine_alone(batch[0], failure))]
        self.counts["batch_splits"] += 1
        half = len(batch) // 2
        return self._commit(batch[:half], PART_TRIES) + self._commit(batch[half:], PART_TRIES)

    def _quarantine_alone(self, message: Message, failure: Exception | None) -> StoreOutcome:
        """The one message whose commit kept failing: quarantined in a transaction of its own."""
        reason = f"commit failed: {failure.__class__.__name__}: {failure}"
        log.error("ingest: message on %s quarantined: %s", message.topic, reason)
        try:
            with self.sessions() as session, session.begin():
                session.add(
                    quarantine_row(
                        message.topic,
                        message.payload,
                        reason,
                        STORE_FAILED,
                        datetime.now(timezone.utc),
                    )
                )
        except Exception as exc:  # noqa: BLE001 - not even a quarantine row: keep it with the broker
            raise DatabaseDown(
                f"quarantining a message failed ({exc.__class__.__name__}: {exc})"
            ) from exc
        return StoreOutcome(Stored.QUARANTINED, reason=reason, quarantine_kind=STORE_FAILED)

    def _store(self, batch: list[Message]) -> list[StoreOutcome]:
        """The batch in one transaction: first without a savepoint per message (two round trips
        fewer per message), and if one message makes the database fail, again with them."""
        try:
            return self._store_once(batch, isolate=False)
        except UNAVAILABLE:
            raise
        except Exception as exc:  # noqa: BLE001 - redone below with each message isolated
            log.info("ingest: a batch failed on its fast path (%s); isolating its messages", exc)
            self.counts["isolated_batches"] += 1
            return self._store_once(batch, isolate=True)

    def _store_once(self, batch: list[Message], isolate: bool) -> list[StoreOutcome]:
        outcomes: dict[int, StoreOutcome] = {}
        # Kiosk rows (status, health) are locked in one order by every worker, after the results,
        # so concurrent workers cannot deadlock on them; a stable sort keeps each kiosk's order.
        order = sorted(range(len(batch)), key=lambda i: _kiosk_key(batch[i].topic))
        with self.sessions() as session, session.begin():
            begin_write(session)
            now = datetime.now(timezone.utc)
            for i in order:
                m = batch[i]
                outcome = store_message(
                    session,
                    m.topic,
                    m.payload,
                    now,
                    self.settings.topic_prefix,
                    self.policy,
                    isolate=isolate,
                )
                if outcome.kind is Stored.QUARANTINED:
                    self._log_quarantine(m.topic, outcome)
                outcomes[i] = outcome
        return [outcomes[i] for i in range(len(batch))]

    def _log_quarantine(self, topic: str, outcome: StoreOutcome) -> None:
        """One warning per QUARANTINE_LOG_S at most: a flood of junk must not flood the log too
        (the quarantine table and the counts keep every one)."""
        now = time.monotonic()
        if now - self._quarantine_logged_at < QUARANTINE_LOG_S:
            self._quarantine_unlogged += 1
            return
        more = self._quarantine_unlogged
        self._quarantine_logged_at, self._quarantine_unlogged = now, 0
        log.warning(
            "ingest: message on %s quarantined (%s): %s%s",
            topic,
            outcome.quarantine_kind,
            outcome.reason,
            f" (and {more} more since the last such line)" if more else "",
        )

    def _ack(self, batch: list[Message]) -> None:
        client = self._client
        if client is None:
            return
        for m in batch:
            if m.qos > 0 and m.generation == self._generation:
                client.ack(m.mid, m.qos)
