"""Live updates for the station page: the ingest tells this hub what it committed, the hub wakes
the server-sent-event streams of that kiosk (no polling loop per page).

The ingest's writer thread calls `observe` after each commit; every open stream waits on its
own asyncio queue, fed with call_soon_threadsafe on the stream's event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from central.contract import DEFAULT_PREFIX, ContractError, parse_topic

Key = tuple[str, str]  # (site, kiosk)


class LiveHub:
    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self._lock = threading.Lock()
        self._streams: dict[Key, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = {}

    def subscribe(self, site: str, kiosk: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=100)
        with self._lock:
            self._streams.setdefault((site, kiosk), set()).add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, site: str, kiosk: str, queue: asyncio.Queue) -> None:
        with self._lock:
            streams = self._streams.get((site, kiosk), set())
            for entry in [e for e in streams if e[1] is queue]:
                streams.discard(entry)
            if not streams:
                self._streams.pop((site, kiosk), None)

    def streams(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._streams.values())

    def notify(self, site: str, kiosk: str, kind: str) -> None:
        """From any thread: wake every stream of this kiosk."""
        with self._lock:
            targets = list(self._streams.get((site, kiosk), ()))
        for loop, queue in targets:
            try:
                loop.call_soon_threadsafe(_offer, queue, kind)
            except RuntimeError:  # that stream's loop has closed
                pass

    def observe(self, outcomes: list[tuple[Any, Any]]) -> None:
        """The ingest's on_committed: (message, outcome) pairs of one committed batch."""
        for message, outcome in outcomes:
            kind = getattr(outcome.kind, "value", str(outcome.kind))
            if kind not in ("new", "status"):
                continue
            try:
                topic = parse_topic(message.topic, self.prefix)
            except ContractError:
                continue
            self.notify(topic.site_id, topic.kiosk_id, kind)

    def attach(self, ingest: Any) -> None:
        """Chain onto the ingest's on_committed (a benchmark's observer keeps running first)."""
        previous: Callable | None = ingest.on_committed

        def chained(outcomes: list[tuple[Any, Any]]) -> None:
            if previous is not None:
                previous(outcomes)
            self.observe(outcomes)

        ingest.on_committed = chained


def _offer(queue: asyncio.Queue, kind: str) -> None:
    if not queue.full():  # a stream that is this far behind reloads its whole state anyway
        queue.put_nowait(kind)
