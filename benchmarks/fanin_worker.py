"""One worker process of the fan-in benchmark: a group of simulated kiosks.

Why processes: paho-mqtt waits on its sockets with select(), which cannot watch file descriptors
above 1023, and each kiosk holds about six (socket, paho's wake-up pair, SQLite database, WAL and
shared-memory files). One process therefore cannot host 200 kiosks; a real kiosk is one process on
its own machine anyway. Workers are started with the `spawn` method (no paho threads inherited).

Times are `time.monotonic()` (CLOCK_MONOTONIC on Linux: one clock for all processes of the machine),
so the parent can subtract a worker's send time from the subscriber's receive time.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.topics import BENCH_PREFIX

SITE = "bench"


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker runs: kiosks `first .. first+count-1` of `total`, on this broker and schedule."""

    index: int
    first: int
    count: int
    total: int
    host: str
    port: int
    protocol: str
    rate: float
    periods: int
    connect_seconds: float
    drain_seconds: float
    topic_prefix: str = (
        BENCH_PREFIX  # never the production prefix by default (benchmarks/topics.py)
    )


def _fake_walk_and_prediction(rng: np.random.Generator):
    """A walk and a prediction that make a schema-valid result (neither holds pixels)."""
    from edge.types import Prediction, Walk, WalkQuality

    now = time.monotonic()
    walk = Walk(
        start_time=now - 3.0,
        end_time=now,
        silhouettes=np.zeros((0, 64, 44), np.uint8),
        timestamps=np.zeros(0),
        quality=WalkQuality(frames_seen=90, frames_kept=90, coverage=0.8),
    )
    probs = rng.dirichlet([2.0, 1.0, 1.0]).astype(np.float32)
    prediction = Prediction(
        probs=probs,
        phase_attention=np.full(4, 0.25, np.float32),
        frame_attention=np.full(30, 1 / 30, np.float32),
        frame_indices=np.arange(30) * 3,
        runner="onnxruntime",
        precision="int8",
        inference_ms=40.0,
    )
    return walk, prediction


def _make_kiosks(plan: WorkerPlan, workdir: Path):
    from edge.outbox.store import Outbox
    from edge.publishing.client import publisher_settings
    from edge.publishing.publisher import Publisher
    from edge.screening.result import ModelIdentity, ResultContext
    from edge.screening.threshold import Threshold
    from edge.settings import KioskIdentity, MqttConfig

    mqtt = MqttConfig(
        url=f"mqtt://{plan.host}:{plan.port}",
        protocol=plan.protocol,
        allow_protocol_311=plan.protocol == "3.1.1",  # the benchmark's broker has no ACL
        reconnect_min_delay=1.0,
        reconnect_max_delay=5.0,
        topic_prefix=plan.topic_prefix,
    )

    identity = ModelIdentity("fanin-benchmark", "0" * 64, "onnxruntime", "int8")
    kiosks = []
    for i in range(plan.first, plan.first + plan.count):
        kiosk_id = f"k{i:04d}"
        outbox = Outbox(workdir / f"{kiosk_id}.sqlite3")
        publisher = Publisher(
            publisher_settings(
                mqtt, KioskIdentity(site_id=SITE, kiosk_id=kiosk_id), f"gaitmil-bench-{kiosk_id}"
            ),
            outbox,
            model=identity.as_dict(),
        )
        kiosks.append(
            (i, ResultContext(SITE, kiosk_id, Threshold(0.5), identity), outbox, publisher)
        )
    return kiosks


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def run_worker(plan: WorkerPlan, start_at, go, out) -> None:
    """Process body. Messages on `out`: ("ready", index, connect_s) | ("error", index, text) |
    ("sent", index, {result_id: t}, lag_ms) | ("done", index, counters)."""
    from edge.errors import EdgeError
    from edge.screening.result import build_result

    try:
        with tempfile.TemporaryDirectory(prefix=f"gaitmil-fanin-{plan.index}-") as tmp:
            kiosks = _make_kiosks(plan, Path(tmp))
            publishers = [k[3] for k in kiosks]
            try:
                t0 = time.monotonic()
                for publisher in publishers:
                    publisher.start()
                if not _wait(lambda: all(p.connected for p in publishers), plan.connect_seconds):
                    missing = sum(not p.connected for p in publishers)
                    out.put(
                        (
                            "error",
                            plan.index,
                            f"{missing} of {len(publishers)} kiosks in worker {plan.index} did "
                            f"not connect within {plan.connect_seconds:.0f} s (broker max_connections? ulimit -n?)",
                        )
                    )
                    return
                out.put(("ready", plan.index, time.monotonic() - t0))
                go.wait()
                cpu0 = cpu_seconds()
                start = start_at.value
                rng = np.random.default_rng(plan.index)
                sent: dict[str, float] = {}
                lag_ms: list[float] = []
                # every kiosk of the whole run has its own slot inside each period: a steady load
                by_slot = {i: (context, publisher) for i, context, _, publisher in kiosks}
                schedule = sorted(
                    ((k + i / plan.total) / plan.rate, i)
                    for k in range(plan.periods)
                    for i in by_slot
                )
                for offset, i in schedule:
                    due = start + offset
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    context, publisher = by_slot[i]
                    walk, prediction = _fake_walk_and_prediction(rng)
                    result = build_result(walk, prediction, context, {"inference": 40.0})
                    now = time.monotonic()
                    lag_ms.append(max(0.0, (now - due) * 1e3))
                    sent[result["result_id"]] = now
                    publisher.publish_result(result)
                out.put(("sent", plan.index, sent, lag_ms))
                _wait(lambda: all(k[2].depth == 0 for k in kiosks), plan.drain_seconds)
                counters = {
                    "cpu_s": cpu_seconds() - cpu0,
                    "outbox_left": sum(k[2].depth for k in kiosks),
                    "parked": sum(p.counters["parked"] for p in publishers),
                    "disconnects": sum(p.counters["disconnects"] for p in publishers),
                }
            finally:
                for _, _, outbox, publisher in kiosks:
                    publisher.stop(timeout=2.0)
                    outbox.close()
        out.put(("done", plan.index, counters))
    except (EdgeError, OSError) as exc:
        out.put(("error", plan.index, f"worker {plan.index}: {exc}"))
