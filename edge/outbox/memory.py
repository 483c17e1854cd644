"""Results the outbox could not store, held in memory until a write succeeds again.

A full disk, a read-only remount or a full disk budget makes `Outbox.put` fail.
Dropping the result would lose a child's screening, so it waits here, in order,
and the publisher's owner thread retries the write with backoff (1 s doubling
to 30 s). While anything waits here, new results queue behind it so the
outbox keeps their order. The queue is bounded (`limit` results, about 1.1 KB
each): past it a result is refused with ResultLostError, logged and counted,
because memory is not a disk.

While the broker is connected the owner thread does not wait for the disk: it
publishes waiting results directly (QoS 1, `to_publish`/`handed`), and a result
leaves memory when the broker acknowledges it (`delivered`) or when the outbox
stored it, whichever comes first. A result in flight is not written to the outbox
meanwhile (that would publish it twice); one the broker refuses waits for the
outbox, which parks it. Results still here when the process exits are lost:
`abandon` counts them in `lost_total`, and the kiosk logs how many and exits 1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from edge.errors import PublishError
from edge.outbox.store import Outbox

log = logging.getLogger(__name__)

MEMORY_LIMIT = 1000  # results; ~1.1 MB
RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0


class ResultLostError(PublishError):
    """The outbox cannot store results and the memory queue is full: this result was not kept."""


@dataclass(eq=False)  # identity, not value: two equal results are still two entries
class HeldResult:
    """One result waiting in memory; `mid` while published directly and not yet acknowledged."""

    topic: str
    payload: bytes
    qos: int
    message_id: str | None
    mid: int | None = None
    refused: str | None = None  # the broker's refusal of a direct publish: it waits for the outbox


class HeldResults:
    """A bounded, ordered memory queue in front of the outbox; thread-safe."""

    def __init__(
        self, outbox: Outbox, limit: int = MEMORY_LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.outbox = outbox
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._queue: deque[HeldResult] = deque()
        self._retry_at = 0.0
        self._delay = RETRY_MIN_S
        self.last_error: str | None = None
        self.held_total = 0
        self.lost_total = 0
        self.delivered_total = 0  # acknowledged by the broker after a direct publish

    def __len__(self) -> int:
        return len(self._queue)

    def store(self, topic: str, payload: bytes, qos: int, message_id: str | None) -> int | None:
        """The outbox row id, or None when the result waits in memory. ResultLostError when memory is full too."""
        with self._lock:
            if not self._queue:
                try:
                    row = self.outbox.put(topic, payload, qos, message_id=message_id)
                except PublishError as exc:
                    self._failed(exc)
                else:
                    self.last_error = None  # the outbox stores results again
                    return row
            if len(self._queue) >= self.limit:
                self.lost_total += 1
                raise ResultLostError(
                    f"result {message_id} lost: the outbox cannot store results ({self.last_error}) and "
                    f"{len(self._queue)} already wait in memory (the limit); fix the outbox disk"
                )
            self._queue.append(HeldResult(topic, bytes(payload), qos, message_id))
            self.held_total += 1
            waiting = len(self._queue)
        log.error(
            "result %s not stored (%s); held in memory (%d waiting), the write is retried",
            message_id,
            self.last_error,
            waiting,
        )
        return None

    def retry(self) -> int:
        """Write waiting results to the outbox, oldest first, if the backoff allows; how many were stored.

        A result published directly and not yet acknowledged is left alone: stored too, it would be
        published a second time."""
        with self._lock:
            if not self._queue or self._clock() < self._retry_at:
                return 0
            stored = 0
            for entry in list(self._queue):
                if entry.mid is not None:
                    continue
                try:
                    self.outbox.put(
                        entry.topic, entry.payload, entry.qos, message_id=entry.message_id
                    )
                except PublishError as exc:
                    self._failed(exc)
                    break
                self._queue.remove(entry)
                stored += 1
            if not self._queue:
                self._delay = RETRY_MIN_S
                self._retry_at = 0.0
                self.last_error = None
            waiting = len(self._queue)
        if stored:
            log.info(
                "stored %d result(s) held in memory in the outbox; %d still waiting",
                stored,
                waiting,
            )
        return stored

    # -- direct publishing while the outbox cannot store (the publisher's owner thread) ---------

    def to_publish(self, limit: int) -> list[HeldResult]:
        """Up to `limit` waiting results, oldest first, neither in flight nor refused by the broker."""
        with self._lock:
            ready = [e for e in self._queue if e.mid is None and e.refused is None]
        return ready[: max(limit, 0)]

    def handed(self, entry: HeldResult, mid: int) -> None:
        with self._lock:
            entry.mid = mid

    def delivered(self, entry: HeldResult) -> bool:
        """The broker acknowledged a direct publish: the result leaves memory (False if it had already)."""
        with self._lock:
            entry.mid = None
            try:
                self._queue.remove(entry)
            except ValueError:
                return False
            self.delivered_total += 1
            # last_error stays: the outbox still cannot store; the next stored result clears it
            return True

    def refused(self, entry: HeldResult, reason: str) -> None:
        """The broker refused a direct publish: not published again; it waits for the outbox, which parks it."""
        with self._lock:
            entry.mid = None
            entry.refused = reason
        log.error(
            "result %s (held in memory) refused by the broker (%s); kept until the outbox can store it",
            entry.message_id,
            reason,
        )

    def forget_mids(self) -> None:
        """A new paho client (the old network thread died): what was in flight is published again."""
        with self._lock:
            for entry in self._queue:
                entry.mid = None

    def _failed(self, exc: PublishError) -> None:
        self.last_error = str(exc)
        self._retry_at = self._clock() + self._delay
        self._delay = min(self._delay * 2.0, RETRY_MAX_S)

    def abandon(self) -> int:
        """At exit: how many results are lost with the process (logged by the caller, counted in lost_total)."""
        with self._lock:
            count = len(self._queue)
            self._queue.clear()
            self.lost_total += count
            return count
