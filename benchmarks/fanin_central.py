"""The central side as the fan-in benchmark's sink: N `python -m central serve --no-web` ingest
workers sharing one MQTT 5 shared subscription (`$share/<group>/...`), all writing to one
PostgreSQL database.

Delivery is measured where a dashboard would see it: a poller reads new rows of `results` every
POLL_S seconds and stamps each result when it first becomes visible (committed), on the machine's
monotonic clock that the kiosk workers also use. The poll interval is added to every latency, so
the figure is pessimistic by up to POLL_S. Duplicates: rows can never repeat (unique result_id);
`duplicated` is the number of redelivered copies the workers absorbed, from their exit lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchmarkError
from benchmarks.topics import BENCH_PREFIX

POLL_S = 0.01
# Ids come from a sequence at insert time but workers commit in any order, so a row with a lower id
# can become visible after a higher one: ids skipped by a poll are polled again for this long.
HOLE_TTL_S = 60.0
GROUP = "bench"
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def postgres_database(url: str | None) -> Iterator[str]:
    """The given PostgreSQL URL, or a fresh database on a throwaway local server."""
    if url is not None:
        if not url.startswith("postgresql"):
            raise BenchmarkError(
                f"--database {url!r}: the central fan-in writes to PostgreSQL (postgresql://...)"
            )
        yield url
        return
    from benchmarks.localpostgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server.create_database()
    finally:
        server.stop()


def _register_bench_site(sessions: Any) -> None:
    """Central quarantines unknown sites: the benchmark's site is added once, marked as a test site."""
    from benchmarks.fanin_worker import SITE
    from central.models import Site
    from central.sites import add_site

    with sessions() as db, db.begin():
        if db.get(Site, SITE) is None:
            add_site(db, SITE, test=True, by="benchmarks.fanin")


class CentralSink:
    """Stands where the benchmark's subscriber stands: start, wait_for, stop, duplicates, invalid."""

    def __init__(
        self,
        broker_url: str,
        database_url: str,
        workers: int,
        on_result: Callable[[dict], None],
        topic_prefix: str = BENCH_PREFIX,
    ) -> None:
        if not 1 <= workers <= 16:
            raise BenchmarkError(f"--central-workers {workers}: use 1 to 16")
        self.broker_url, self.database_url, self.workers = broker_url, database_url, workers
        self.on_result = on_result
        self.topic_prefix = topic_prefix
        self.seen: set[str] = set()
        self.duplicates = 0
        self.invalid = 0
        self.duplicated_rows = 0
        self.rows = 0
        self.counts: list[dict[str, int]] = []
        self._procs: list[subprocess.Popen] = []
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._engine: Any = None  # the Engine, once started

    def start(self, wait: float = 30.0) -> None:
        from central.db import open_store

        self._engine, sessions = open_store(
            self.database_url
        )  # migrate once, before the workers race to
        _register_bench_site(sessions)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for i in range(self.workers):
            self._procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "central",
                        "--log-level",
                        "WARNING",
                        "serve",
                        "--no-web",
                        "--broker",
                        self.broker_url,
                        "--database",
                        self.database_url,
                        "--share-group",
                        GROUP,
                        "--client-id",
                        f"bench-central-{i}",
                        "--topic-prefix",
                        self.topic_prefix,
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        # a worker prints its first line once it runs; then give its subscription a moment
        for proc in self._procs:
            if proc.stdout is None or not proc.stdout.readline():
                raise BenchmarkError(
                    f"a central ingest worker exited at start (code {proc.wait()})"
                )
        time.sleep(min(wait, 2.0))
        self._poller = threading.Thread(target=self._poll, name="central-poller", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        from sqlalchemy import bindparam, text

        last = 0
        holes: dict[int, float] = {}  # ids below `last` not seen yet -> when first missed
        query = text(
            "SELECT id, result_id FROM results WHERE id > :last OR id IN :holes"
        ).bindparams(bindparam("holes", expanding=True))
        with self._engine.connect() as conn:
            while not self._stop.is_set():
                rows = conn.execute(query, {"last": last, "holes": list(holes) or [-1]}).all()
                conn.commit()  # a fresh snapshot for the next poll
                now = time.monotonic()
                top = max((row_id for row_id, _ in rows), default=last)
                for row_id in range(last + 1, top + 1):
                    holes[row_id] = now
                for row_id, rid in rows:
                    holes.pop(row_id, None)
                    if rid not in self.seen:
                        self.seen.add(rid)
                        self.on_result({"result_id": rid})
                last = top
                for row_id in [i for i, t in holes.items() if now - t > HOLE_TTL_S]:
                    del holes[row_id]  # an id a rolled-back insert used up: it never appears
                time.sleep(POLL_S)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.seen) >= count

    def stop(self) -> None:
        from sqlalchemy import text

        self._stop.set()
        if self._poller is not None:
            self._poller.join(10)
        for proc in self._procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            out, _ = proc.communicate(timeout=60)
            found = re.search(r"central ingest stopped: (.*)", out or "")
            self.counts.append(
                {k: int(v) for k, v in (p.split("=") for p in found.group(1).split())}
                if found
                else {}
            )
        self.duplicates = sum(c.get("duplicate", 0) for c in self.counts)
        self.invalid = sum(c.get("quarantined", 0) for c in self.counts)
        if self._engine is not None:
            with self._engine.connect() as conn:
                self.duplicated_rows = conn.execute(
                    text("SELECT count(*) - count(DISTINCT result_id) FROM results")
                ).scalar_one()
                self.rows = conn.execute(text("SELECT count(*) FROM results")).scalar_one()
            self._engine.dispose()

    def summary(self) -> dict:
        return {
            "workers": self.workers,
            "database": "postgresql",
            "per_worker_new": [c.get("new", 0) for c in self.counts],
            "duplicated_rows": self.duplicated_rows,
            "rows": self.rows,
            "latency_is": "publish_result to row visible in PostgreSQL",
            "poll_s": POLL_S,
        }
