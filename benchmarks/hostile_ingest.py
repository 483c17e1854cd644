"""`python -m benchmarks.hostile_ingest`: hostile messages mixed with valid results into central.

Issue 23's target: 1,000 hostile messages (random bytes, deep nesting, payloads
over the size cap, wrong types, NaN/Infinity/1e400, bad topics, an unknown
site) shuffled with 1,000 valid results, published at 200 msg/s (QoS 1)
through a real mosquitto into central's ingest, on SQLite or PostgreSQL.
It prints valid stored, quarantined, lost, duplicated and the p99
publish-to-commit latency of the valid results. A benchmark, not a timed test:
tests/benchmarks/test_hostile_ingest.py runs it at a tiny scale.

Publish-to-commit: the publisher stamps each valid result when it hands it to
paho; the ingest runs in this process and stamps it when its batch is
committed (Ingest.on_committed), both on time.monotonic().
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchmarkError
from benchmarks.hostile import VALID, Message, mix
from benchmarks.stats import percentile
from benchmarks.topics import ALLOW_FLAG, BENCH_PREFIX, PRODUCTION_PREFIX, check_prefix
from gaitcontract import HelpFormatter, add_version_flag

SITE = "hostile-bench"
KIOSK = "kiosk-1"


@dataclass(frozen=True)
class HostileSettings:
    valid: int = 1000
    hostile: int = 1000
    rate: float = 200.0
    database: str = "sqlite"  # sqlite | postgresql
    database_url: str | None = None
    broker: str | None = None  # None: a throwaway mosquitto
    topic_prefix: str = BENCH_PREFIX
    allow_production_prefix: bool = False
    drain_s: float = 120.0
    seed: int = 0


@contextmanager
def _database(settings: HostileSettings) -> Iterator[str]:
    if settings.database_url is not None:
        yield settings.database_url
    elif settings.database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="gaitmil-hostile-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'central.db'}"
    elif settings.database == "postgresql":
        from benchmarks.fanin_central import postgres_database

        with postgres_database(None) as url:
            yield url
    else:
        raise BenchmarkError(f"--database {settings.database!r}: use sqlite or postgresql")


@contextmanager
def _broker(url: str | None) -> Iterator[str]:
    if url is not None:
        from benchmarks.localbroker import require_loopback

        require_loopback(url)
        yield url
        return
    from benchmarks.localmosquitto import local_mosquitto

    with local_mosquitto() as started:
        yield started


class _Publisher:
    """QoS 1 at a fixed rate; stamps each valid result's publish time."""

    def __init__(self, broker_url: str) -> None:
        import paho.mqtt.client as mqtt

        from central.mqtt_link import BrokerSettings

        host, port, _ = BrokerSettings(url=broker_url).address()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="hostile-bench-kiosk", protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        self.sent_at: dict[str, float] = {}

    def run(self, messages: list[Message], rate: float) -> None:
        infos = []
        start = time.monotonic()
        for i, m in enumerate(messages):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if m.result_id is not None:
                self.sent_at[m.result_id] = time.monotonic()
            infos.append(self.client.publish(m.topic, m.payload, qos=1))
        for info in infos:
            info.wait_for_publish(60)
        unacked = sum(1 for info in infos if not info.is_published())
        if unacked:
            raise BenchmarkError(f"the broker acknowledged {len(infos) - unacked} of {len(infos)}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(settings: HostileSettings) -> dict[str, Any]:
    from sqlalchemy import func, select

    from central.db import open_store
    from central.ingest import Ingest
    from central.models import Quarantine, Result
    from central.mqtt_link import BrokerSettings
    from central.sites import add_site

    prefix = check_prefix(settings.topic_prefix, settings.allow_production_prefix)
    messages = mix(settings.valid, settings.hostile, prefix, SITE, KIOSK, settings.seed)
    committed_at: dict[str, float] = {}
    lock = threading.Lock()

    def on_committed(outcomes: list) -> None:
        now = time.monotonic()
        with lock:
            for _message, outcome in outcomes:
                if outcome.result_id is not None and outcome.kind.value == "new":
                    committed_at.setdefault(outcome.result_id, now)

    with _database(settings) as url, _broker(settings.broker) as broker_url:
        engine, sessions = open_store(url)
        with sessions() as db, db.begin():
            add_site(db, SITE, test=True, by="benchmarks.hostile_ingest")
        ingest = Ingest(
            BrokerSettings(url=broker_url, client_id="hostile-bench-central", topic_prefix=prefix),
            sessions,
        )
        ingest.on_committed = on_committed
        ingest.start()
        publisher = _Publisher(broker_url)
        began = time.monotonic()
        try:
            publisher.run(messages, settings.rate)
            published_s = time.monotonic() - began
            deadline = time.monotonic() + settings.drain_s
            handled = ("new", "duplicate", "quarantined")
            while time.monotonic() < deadline:
                if sum(ingest.counts[k] for k in handled) >= len(messages):
                    break
                time.sleep(0.05)
            alive = _still_alive(ingest, prefix, sessions)
        finally:
            publisher.close()
            ingest.stop()
        with sessions() as db:
            ids = list(db.scalars(select(Result.result_id).where(Result.site_id == SITE)))
            kinds = Counter(k or "?" for k in db.scalars(select(Quarantine.kind)).all())
            quarantined = int(db.scalar(select(func.count()).select_from(Quarantine)) or 0)
        engine.dispose()
    valid_ids = {m.result_id for m in messages if m.expect == VALID}
    stored = valid_ids & set(ids)
    latencies = sorted(
        (committed_at[r] - publisher.sent_at[r]) * 1000.0
        for r in stored
        if r in committed_at and r in publisher.sent_at
    )
    expected = Counter(m.expect for m in messages if m.expect != VALID)
    return {
        "database": engine.dialect.name,
        "rate_msg_s": settings.rate,
        "published": len(messages),
        "publish_s": round(published_s, 2),
        "valid_sent": len(valid_ids),
        "valid_stored": len(stored),
        "lost": len(valid_ids - stored),
        "duplicated": len(ids) - len(set(ids)),
        "redeliveries_absorbed": ingest.counts["duplicate"],
        "hostile_sent": sum(expected.values()),
        "quarantined": quarantined,
        "quarantined_by_kind": dict(sorted(kinds.items())),
        "expected_by_kind": dict(sorted(expected.items())),
        "batch_splits": ingest.counts["batch_splits"],
        "writer_restarts": ingest.counts["writer_restarts"],
        "ingest_alive_after": alive,
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1) if latencies else None,
            "p99": round(percentile(latencies, 99), 1) if latencies else None,
            "max": round(latencies[-1], 1) if latencies else None,
        },
        "settings": asdict(settings),
    }


def _still_alive(ingest: Any, prefix: str, sessions: Any) -> bool:
    """One more valid result after the mix: stored within 10 s means the ingest lives on."""
    import random

    from sqlalchemy import select

    from benchmarks.hostile import valid
    from central.models import Result

    probe = valid(prefix, SITE, KIOSK, random.Random())
    ingest.publish(probe.topic, probe.payload)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with sessions() as db:
            if db.scalar(select(Result.id).where(Result.result_id == probe.result_id)):
                return True
        time.sleep(0.05)
    return False


def render(report: dict[str, Any]) -> str:
    lat = report["latency_ms"]
    kinds = ", ".join(f"{k} {v}" for k, v in report["quarantined_by_kind"].items())
    return "\n".join(
        [
            f"hostile ingest on {report['database']}: {report['published']} messages at "
            f"{report['rate_msg_s']:g} msg/s (published in {report['publish_s']} s)",
            f"  valid stored      {report['valid_stored']} of {report['valid_sent']}",
            f"  quarantined       {report['quarantined']} of {report['hostile_sent']} hostile ({kinds})",
            f"  lost              {report['lost']}",
            f"  duplicated        {report['duplicated']}",
            f"  p50 / p99 / max publish-to-commit  {lat['p50']} / {lat['p99']} / {lat['max']} ms",
            f"  batch splits {report['batch_splits']}, writer restarts {report['writer_restarts']}, "
            f"ingest alive after: {'yes' if report['ingest_alive_after'] else 'NO'}",
        ]
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.hostile_ingest",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    add_version_flag(p)
    p.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"], help="store")
    p.add_argument(
        "--database-url", default=None, help="an existing database (default: a throwaway one)"
    )
    p.add_argument("--valid", type=int, default=1000, help="valid results")
    p.add_argument("--hostile", type=int, default=1000, help="hostile messages")
    p.add_argument("--rate", type=float, default=200.0, help="messages per second")
    p.add_argument(
        "--broker", default=None, help="mqtt://127.0.0.1:PORT (default: a throwaway mosquitto)"
    )
    p.add_argument("--topic-prefix", default=BENCH_PREFIX, help="topic prefix")
    p.add_argument(
        ALLOW_FLAG, action="store_true", help=f"allow the production prefix {PRODUCTION_PREFIX}"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the mix and its order")
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # one warning per quarantined message is the ingest's log; here it would bury the report
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.valid < 0 or args.hostile < 0 or not args.rate > 0:
        print("error: --valid and --hostile must be 0 or more, --rate more than 0", file=sys.stderr)
        return 2
    settings = HostileSettings(
        valid=args.valid,
        hostile=args.hostile,
        rate=args.rate,
        database=args.database,
        database_url=args.database_url,
        broker=args.broker,
        topic_prefix=args.topic_prefix,
        allow_production_prefix=args.allow_production_prefix,
        seed=args.seed,
    )
    try:
        report = run(settings)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return (
        0
        if report["lost"] == 0 and report["duplicated"] == 0 and report["ingest_alive_after"]
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
