"""`python -m benchmarks.fanin --kiosks N --rate R --seconds S --broker URL`: many kiosks, one broker.

Each simulated kiosk is the kiosk's own publishing path: its own SQLite outbox and its own
edge.publishing.publisher.Publisher (a real paho client with its network and outbox-owner threads), grouped
--kiosks-per-worker to a worker process (benchmarks/fanin_worker.py says why). One dashboard
subscriber (edge.publishing.subscriber.ResultSubscriber, validating and de-duplicating like a real dashboard)
receives everything. Kiosks publish schema-valid results (edge.screening.result.build_result) on a fixed
schedule, spread evenly inside each period so the load is steady rather than in bursts.

Counted: sent (committed to an outbox), delivered (unique results the subscriber accepted), lost
(sent but not delivered after the drain time), duplicated (deliveries of an id already seen), and the
end-to-end latency from `publish_result` (outbox commit) to the subscriber's callback, on the
machine's monotonic clock shared by all processes. Bounded: at most MAX_KIOSKS kiosks, MAX_SECONDS seconds and
MAX_MESSAGES results per run; loopback brokers only.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import report as rep
from benchmarks.env import describe_machine, environment
from benchmarks.errors import BenchmarkError
from benchmarks.fanin_worker import SITE, cpu_seconds
from benchmarks.localbroker import local_broker
from benchmarks.stats import summarize
from benchmarks.topics import ALLOW_FLAG, BENCH_PREFIX, PRODUCTION_PREFIX, check_prefix
from gaitcontract import HelpFormatter, add_version_flag

SCHEMA_ID = "gaitmil.bench.fanin/1"
MAX_KIOSKS = 1000
MAX_SECONDS = 600.0
MAX_MESSAGES = 200_000


@dataclass
class FaninSettings:
    kiosks: int = 10
    rate: float = 1.0  # results per second per kiosk
    seconds: float = 10.0
    drain_seconds: float = 30.0  # wait this long after the last send for deliveries
    connect_seconds: float = 60.0  # all kiosks must be connected within this
    protocol: str = "5"
    kiosks_per_worker: int = 50  # paho's select() limit: see benchmarks/fanin_worker.py
    central_workers: int = (
        0  # > 0: central ingest workers + PostgreSQL are the sink (benchmarks/fanin_central.py)
    )
    database: str | None = None  # PostgreSQL URL for them; None: a throwaway local server
    # benchmark results never go out on the production prefix unless asked (benchmarks/topics.py)
    topic_prefix: str = BENCH_PREFIX
    allow_production_prefix: bool = False

    def check(self) -> None:
        check_prefix(self.topic_prefix, self.allow_production_prefix)
        if not 1 <= self.kiosks <= MAX_KIOSKS:
            raise BenchmarkError(f"--kiosks {self.kiosks}: use 1 to {MAX_KIOSKS}")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise BenchmarkError(
                f"--seconds {self.seconds}: use more than 0 and at most {MAX_SECONDS:.0f}"
            )
        if not 1 <= self.kiosks_per_worker <= 100:
            raise BenchmarkError(
                f"--kiosks-per-worker {self.kiosks_per_worker}: use 1 to 100 (paho's select() limit)"
            )
        if not 0 < self.rate <= 100:
            raise BenchmarkError(
                f"--rate {self.rate}: use more than 0 and at most 100 results/s per kiosk"
            )
        if self.messages > MAX_MESSAGES:
            raise BenchmarkError(
                f"{self.kiosks} kiosks x {self.rate}/s x {self.seconds} s = {self.messages} results, more than "
                f"{MAX_MESSAGES}: lower --kiosks, --rate or --seconds"
            )

    @property
    def messages(self) -> int:
        return self.kiosks * max(1, int(round(self.rate * self.seconds)))


class Mailbox:
    """Messages from the workers, sorted by kind: one worker may be done before another has sent."""

    def __init__(self, queue, workers: int) -> None:
        self.queue, self.workers = queue, workers
        self.inbox: dict[str, dict[int, tuple]] = {}

    def collect(self, kind: str, timeout: float) -> dict[int, tuple]:
        """Wait for one `kind` message from every worker; a worker's error ends the run with its text."""
        import queue

        deadline = time.monotonic() + timeout
        while len(got := self.inbox.setdefault(kind, {})) < self.workers:
            try:
                message = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchmarkError(
                    f"{self.workers - len(got)} fan-in worker(s) sent no '{kind}' within {timeout:.0f} s"
                ) from None
            if message[0] == "error":
                raise BenchmarkError(message[2])
            self.inbox.setdefault(message[0], {})[message[1]] = message[2:]
        return got


def run_fanin(settings: FaninSettings, broker_url: str | None) -> dict:
    """Subscriber here, kiosks in worker processes; publish on schedule, drain, count; the report body."""
    settings.check()  # before a throwaway PostgreSQL is started for nothing
    if settings.central_workers:
        from benchmarks.fanin_central import postgres_database

        with postgres_database(settings.database) as url:
            return _run_fanin(settings, broker_url, url)
    return _run_fanin(settings, broker_url, None)


def _run_fanin(settings: FaninSettings, broker_url: str | None, database_url: str | None) -> dict:
    import multiprocessing

    from benchmarks.fanin_worker import WorkerPlan, run_worker
    from edge.publishing.subscriber import ResultSubscriber
    from edge.settings import MqttConfig

    settings.check()
    received: dict[str, float] = {}
    lock = threading.Lock()

    def on_result(result: dict) -> None:
        now = time.monotonic()  # CLOCK_MONOTONIC: the workers' clock too
        with lock:
            received.setdefault(str(result["result_id"]), now)

    periods = max(1, int(round(settings.rate * settings.seconds)))
    ctx = multiprocessing.get_context("spawn")  # no paho threads or sockets inherited
    subscriber: Any  # a ResultSubscriber, or CentralSink (same start/wait_for/stop)
    with local_broker(broker_url, settings.protocol) as broker:
        if database_url is not None:
            from benchmarks.fanin_central import CentralSink

            if broker.protocol != "5":
                raise BenchmarkError(
                    "central ingest workers share a $share subscription: MQTT 5 (give --broker)"
                )
            subscriber = CentralSink(
                broker.url,
                database_url,
                settings.central_workers,
                on_result,
                settings.topic_prefix,
            )
        else:
            # a subscriber publishes nothing: 3.1.1's silent loss of refused publishes does not apply
            mqtt = MqttConfig(
                url=broker.url,
                protocol=broker.protocol,
                allow_protocol_311=True,
                reconnect_max_delay=5.0,
                topic_prefix=settings.topic_prefix,
            )
            subscriber = ResultSubscriber(mqtt, site=SITE, on_result=on_result)
        subscriber.start(wait=30.0)
        out, go, start_at = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
        groups = [
            (first, min(settings.kiosks_per_worker, settings.kiosks - first))
            for first in range(0, settings.kiosks, settings.kiosks_per_worker)
        ]
        processes = [
            ctx.Process(
                target=run_worker,
                name=f"fanin-{w}",
                daemon=True,
                args=(
                    WorkerPlan(
                        w,
                        first,
                        count,
                        settings.kiosks,
                        broker.host,
                        broker.port,
                        broker.protocol,
                        settings.rate,
                        periods,
                        settings.connect_seconds,
                        settings.drain_seconds,
                        settings.topic_prefix,
                    ),
                    start_at,
                    go,
                    out,
                ),
            )
            for w, (first, count) in enumerate(groups)
        ]
        try:
            t_connect = time.monotonic()
            for process in processes:
                process.start()
            mailbox = Mailbox(out, len(processes))
            ready = mailbox.collect("ready", settings.connect_seconds + 60)
            connect_s = time.monotonic() - t_connect
            start = time.monotonic() + 0.5
            start_at.value = start
            go.set()
            cpu0 = cpu_seconds()
            sent_parts = mailbox.collect("sent", settings.seconds + 120)
            sent = {rid: t for part in sent_parts.values() for rid, t in part[0].items()}
            lag_ms = [x for part in sent_parts.values() for x in part[1]]
            send_s = max(sent.values()) - start if sent else 0.0
            subscriber.wait_for(len(sent), settings.drain_seconds)
            done = mailbox.collect("done", settings.drain_seconds + 60)
            time.sleep(0.5)  # late duplicates (redeliveries) show up after the last first delivery
            wall_s = time.monotonic() - start
            cpu_s = cpu_seconds() - cpu0 + sum(d[0]["cpu_s"] for d in done.values())
        finally:
            go.set()
            for process in processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.terminate()
            subscriber.stop()
    with lock:
        latencies = [(received[r] - t) * 1e3 for r, t in sent.items() if r in received]
        foreign = len(set(received) - set(sent))
        last = max((received[r] for r in sent if r in received), default=start)
    delivered = len(latencies)
    return {
        "schema": SCHEMA_ID,
        "settings": {
            "kiosks": settings.kiosks,
            "rate_per_kiosk": settings.rate,
            "seconds": settings.seconds,
            "drain_seconds": settings.drain_seconds,
            "protocol": broker.protocol,
            "workers": len(processes),
            "kiosks_per_worker": settings.kiosks_per_worker,
            "broker": "embedded (amqtt, MQTT 3.1.1)" if broker.embedded else broker.url,
        },
        "sent": len(sent),
        "delivered": delivered,
        "lost": len(sent) - delivered,
        "duplicated": subscriber.duplicates,
        "invalid": subscriber.invalid,
        "foreign": foreign,
        "outbox_left": sum(d[0]["outbox_left"] for d in done.values()),
        "parked": sum(d[0]["parked"] for d in done.values()),
        "disconnects": sum(d[0]["disconnects"] for d in done.values()),
        "connect_s": connect_s,
        "slowest_worker_connect_s": max(r[0] for r in ready.values()),
        "send_s": send_s,
        "wall_s": wall_s,
        "offered_per_s": settings.kiosks * settings.rate,
        "delivered_per_s": delivered / (last - start) if last > start else None,
        # kiosk workers + subscriber from the start signal to the end of the drain (the broker is not counted)
        "cpu_cores_busy": cpu_s / wall_s,
        "latency_ms": summarize(latencies) if latencies else None,
        "schedule_lag_ms": summarize(lag_ms) if lag_ms else None,
        "samples_ms": {"latency": latencies},
        **({"central": subscriber.summary()} if database_url is not None else {}),
    }


def fanin_markdown(report: dict) -> str:
    s = report["settings"]
    lat = report["latency_ms"]
    out = [
        f"## Broker fan-in: {s['kiosks']} kiosks x {s['rate_per_kiosk']:g} result/s for {s['seconds']:g} s, "
        f"MQTT {s['protocol']}, broker {s['broker']}",
        f"`{report['command']}`",
        "",
        f"Machine: {describe_machine(report['environment'])}",
        "",
        rep.markdown_table(
            [
                "sent",
                "delivered",
                "lost",
                "duplicated",
                "invalid",
                "left in outboxes",
                "offered/s",
                "delivered/s",
                "CPU cores busy",
            ],
            [
                [
                    report["sent"],
                    report["delivered"],
                    report["lost"],
                    report["duplicated"],
                    report["invalid"],
                    report["outbox_left"],
                    rep.fmt(report["offered_per_s"], 1),
                    rep.fmt(report["delivered_per_s"], 1),
                    rep.fmt(report["cpu_cores_busy"]),
                ]
            ],
        ),
        "",
        "### Latency: outbox commit to dashboard callback",
        "",
        rep.stats_table(
            [("end to end", lat), ("sender behind schedule", report["schedule_lag_ms"])]
        ),
        "",
        f"All {s['kiosks']} kiosks ({s['workers']} worker processes) started and connected in "
        f"{report['connect_s']:.2f} s. Kiosks, subscriber and broker share this machine's cores; CPU above is "
        "the kiosk workers' and the subscriber's (not the broker's) over the run.",
    ]
    return "\n".join(out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.fanin",
        description=__doc__.split("\n\n")[0],
        epilog="Documentation: docs/BENCHMARKS.md",
        formatter_class=HelpFormatter,
    )
    add_version_flag(p)
    p.add_argument("--kiosks", type=int, default=10, help="simulated kiosks (at most 1000)")
    p.add_argument("--rate", type=float, default=1.0, help="results per second per kiosk")
    p.add_argument(
        "--seconds", type=float, default=10.0, help="how long the kiosks publish (at most 600)"
    )
    p.add_argument(
        "--broker", help="mqtt://127.0.0.1:PORT (loopback only; default: the embedded broker)"
    )
    p.add_argument(
        "--protocol",
        choices=["5", "3.1.1"],
        default="5",
        help="MQTT version of kiosks and subscriber",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="wait this long after the last result for deliveries",
    )
    p.add_argument(
        "--kiosks-per-worker", type=int, default=50, help="kiosks per worker process (at most 100)"
    )
    p.add_argument(
        "--central-workers",
        type=int,
        default=0,
        help="deliver into this many central ingest workers and PostgreSQL instead of one subscriber",
    )
    p.add_argument(
        "--database",
        help="PostgreSQL URL for --central-workers (default: a throwaway local server)",
    )
    p.add_argument(
        "--topic-prefix",
        default=BENCH_PREFIX,
        help="topic prefix the simulated kiosks publish under",
    )
    p.add_argument(
        ALLOW_FLAG,
        action="store_true",
        help=f"allow --topic-prefix {PRODUCTION_PREFIX} (the production prefix: results mix with real records)",
    )
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here")
    p.add_argument("--plot", type=Path, help="PNG of the end-to-end latency distribution")
    return p


def main(argv: list[str] | None = None) -> int:
    from edge.errors import EdgeError

    args = parser().parse_args(argv)
    command = "python -m benchmarks.fanin " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    settings = FaninSettings(
        kiosks=args.kiosks,
        rate=args.rate,
        seconds=args.seconds,
        drain_seconds=args.drain_seconds,
        protocol=args.protocol,
        kiosks_per_worker=args.kiosks_per_worker,
        central_workers=args.central_workers,
        database=args.database,
        topic_prefix=args.topic_prefix,
        allow_production_prefix=args.allow_production_prefix,
    )
    try:
        body = run_fanin(settings, args.broker)
    except (BenchmarkError, EdgeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {
        "schema": body.pop("schema"),
        "command": command,
        "environment": environment(),
        **body,
    }
    print(fanin_markdown(report))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(fanin_markdown(report) + "\n")
    if args.json:
        rep.write_json(report, args.json)
    if args.plot and report["samples_ms"]["latency"]:
        rep.plot_distributions(
            {f"{args.kiosks} kiosks": report["samples_ms"]["latency"]},
            args.plot,
            "Broker fan-in",
            "outbox commit to dashboard (ms)",
        )
    # a lost result is a failed run: scripts and CI can rely on the exit code
    return 0 if report["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
