"""Live updates for the station page: the ingest tells this hub what it committed, the hub wakes
the server-sent-event streams of that kiosk (no polling loop per page).

The ingest's writer thread calls `observe` after each commit; every open stream waits on its
own asyncio queue, fed with call_soon_threadsafe on the stream's event loop.

Results can also be committed by another process: a `--no-ingest` web front, or another
worker of a `$share` group. For those, one watcher thread per process (started with the first
stream, idle while none is open) looks once per WATCH_S at the kiosks that have open streams
(their result count and status time) and wakes the streams of those that changed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from central.contract import DEFAULT_PREFIX, ContractError, parse_topic
from central.models import Kiosk, Result

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (site, kiosk)


WATCH_S = 1.0


class LiveHub:
    def __init__(self, prefix: str = DEFAULT_PREFIX, sessions: Any = None) -> None:
        self.prefix = prefix
        self.sessions = sessions  # for the watcher; None: only what observe() is told
        self._lock = threading.Lock()
        self._streams: dict[Key, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = {}
        self._watcher: threading.Thread | None = None
        self._seen: dict[Key, tuple] = {}

    def subscribe(self, site: str, kiosk: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=100)
        with self._lock:
            self._streams.setdefault((site, kiosk), set()).add((asyncio.get_running_loop(), queue))
            if self.sessions is not None and self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch, name="central-live-watch", daemon=True
                )
                self._watcher.start()
        return queue

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_S)
            with self._lock:
                keys = list(self._streams)
            if not keys:
                continue
            try:
                self.check(keys)
            except Exception:  # noqa: BLE001 - the database may be away a moment; look again
                log.warning("live: checking kiosks for changes failed", exc_info=True)

    def check(self, keys: list[Key]) -> None:
        """Wake the streams of the kiosks whose results or status changed since the last look."""
        with self.sessions() as db:
            for site, kiosk in keys:
                count, last = db.execute(
                    select(func.count(), func.max(Result.received_at)).where(
                        Result.site_id == site, Result.kiosk_id == kiosk
                    )
                ).one()
                row = db.get(Kiosk, (site, kiosk))
                now = (count, last, row.state if row else None, row.status_time if row else None)
                before = self._seen.get((site, kiosk))
                self._seen[(site, kiosk)] = now
                if before != now:  # the first look too: a change may precede it
                    self.notify(site, kiosk, "changed")

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
