"""`python -m benchmarks.latency --pipeline`: the whole kiosk loop on the simulated camera.

It runs edge.service.Kiosk itself (capture, segmentation + walk assembly, inference, result, outbox,
MQTT publisher) against a local broker, once per mode:

- fast: the simulator as fast as the kiosk takes frames: the throughput ceiling (frames/s);
- realtime: the simulator paced at 30 fps like a camera: does the kiosk keep up (frames dropped),
  how much CPU it leaves free, and how long a child waits from leaving the view to the broker's ack.

The kiosk's parts are wrapped with thin timers (the service accepts injected components) to get
per-frame costs of each stage; nothing in the loop is replaced. Walk end is when the walk assembler
hands over a finished walk; the acknowledgement is when the broker's PUBACK removes the result from
the outbox. The simulator's rendering runs in the same process, so CPU use includes it; its cost per
frame is reported separately (a real camera does this work in its own hardware).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import report as rep
from benchmarks.env import describe_machine, environment
from benchmarks.errors import BenchmarkError
from benchmarks.localbroker import local_broker
from benchmarks.stats import summarize

SCHEMA_ID = "gaitmil.bench.pipeline/1"
MODES = ("fast", "realtime")
FRAME_STAGES = ("source", "segmentation", "walk_assembly")


class StageTimes:
    """Samples per stage (ms) and the moments of walk ends, results and acknowledgements (perf_counter)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = {
            s: [] for s in (*FRAME_STAGES, "inference", "walk_to_outbox")
        }
        self.walk_end: dict[str, float] = {}
        self.result_walk: dict[str, str] = {}
        self.outcomes: dict[str, int] = {}
        self.row_result: dict[int, str] = {}
        self.stored: dict[str, float] = {}  # result id -> committed to the outbox
        self.acked: dict[str, float] = {}
        self.frame_span: list[
            float
        ] = []  # perf_counter of the first and the latest frame delivered

    def add(self, stage: str, ms: float) -> None:
        with self.lock:
            self.samples[stage].append(ms)

    def since_walk_end_ms(self, moments: dict[str, float]) -> list[float]:
        """For each result with a moment in `moments` (stored, acked): ms since its walk ended."""
        with self.lock:
            return [
                (moments[rid] - self.walk_end[wid]) * 1e3
                for rid, wid in self.result_walk.items()
                if rid in moments and wid in self.walk_end
            ]


class _Proxy:
    """Delegates every attribute to the wrapped kiosk part; subclasses time one method."""

    def __init__(self, inner, times: StageTimes) -> None:
        self._inner, self._times = inner, times

    def __getattr__(self, name):
        return getattr(self._inner, name)


class TimedSource(_Proxy):
    def __iter__(self):
        iterator = iter(self._inner)
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(iterator)
            except StopIteration:
                return
            now = time.perf_counter()
            self._times.add("source", (now - t0) * 1e3)
            span = self._times.frame_span
            if span:
                span[1:] = [now]  # the latest frame
            else:
                span.append(now)  # the first frame
            yield frame


class TimedSegmenter(_Proxy):
    def segment(self, frame):
        t0 = time.perf_counter()
        mask = self._inner.segment(frame)
        self._times.add("segmentation", (time.perf_counter() - t0) * 1e3)
        return mask


class TimedAssembler(_Proxy):
    def push(self, mask):
        t0 = time.perf_counter()
        walk = self._inner.push(mask)
        t1 = time.perf_counter()
        self._times.add("walk_assembly", (t1 - t0) * 1e3)
        if walk is not None:
            with self._times.lock:
                self._times.walk_end[walk.walk_id] = t1
        return walk

    def flush(self):
        walk = self._inner.flush()
        if walk is not None:
            with self._times.lock:
                self._times.walk_end[walk.walk_id] = time.perf_counter()
        return walk


class TimedOutbox(_Proxy):
    def put(self, topic, payload, qos=1, message_id=None, retain=False):
        row = self._inner.put(topic, payload, qos, message_id=message_id, retain=retain)
        now = time.perf_counter()
        if message_id is not None:
            with self._times.lock:
                self._times.row_result[row] = message_id
                self._times.stored[message_id] = now
        return row

    def ack(self, row_id):
        now = time.perf_counter()
        with self._times.lock:
            rid = self._times.row_result.get(row_id)
            if rid is not None:
                self._times.acked.setdefault(rid, now)
        return self._inner.ack(row_id)


class PeakMemory:
    """Peak resident memory of this process, sampled every 20 ms while a mode runs."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_mode(mode: str, args: argparse.Namespace, broker, state_dir: Path) -> dict:
    """One kiosk run over `args.sim_walks` simulated walks in `mode`; returns the mode's report."""
    import psutil

    from edge.config import load_config
    from edge.publishing.topic_guard import guarded_prefix
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components

    if mode not in MODES:
        raise BenchmarkError(f"--modes: unknown mode {mode!r}; choose from {', '.join(MODES)}")
    realtime = int(mode == "realtime")
    # fake results never under the production prefix unless asked (a local broker may bridge to central)
    prefix = guarded_prefix(
        getattr(args, "topic_prefix", None),
        getattr(args, "allow_production_prefix", False),
        "python -m benchmarks.latency --pipeline",
    )
    overrides = {
        "kiosk.kiosk_id": f"bench-{mode}",
        "kiosk.site_id": "bench",
        "source.uri": f"sim://?seed={args.seed}&walks={args.sim_walks}&view=toward&realtime={realtime}",
        "model.path": str(args.model_path),
        "model.runner": args.runner_name,
        "model.threads": args.threads,
        # benchmarks measure the pipeline, not screening: the demo model is simulated-data
        "screening.allow_simulated_model": True,
        "mqtt.url": broker.url,
        "mqtt.protocol": broker.protocol,
        "mqtt.topic_prefix": prefix,
        "mqtt.allow_protocol_311": broker.protocol
        == "3.1.1",  # the embedded broker has no ACL to refuse with
        "state_dir": str(state_dir / mode),
        "health.interval_seconds": 3600.0,
        "outbox.flush_seconds": 30.0,
    }
    # the kiosk's own configuration (a file, or the defaults); the benchmark only picks source, model and broker
    cfg = load_config(args.config, overrides, env={})
    times = StageTimes()
    parts = build_components(cfg)
    parts.source = TimedSource(parts.source, times)
    parts.segmenter = TimedSegmenter(parts.segmenter, times)
    parts.assembler = TimedAssembler(parts.assembler, times)
    make_publisher = parts.make_publisher

    def timed_publisher(identity):
        publisher = make_publisher(identity)
        publisher.outbox = TimedOutbox(publisher.outbox, times)
        return publisher

    parts.make_publisher = timed_publisher

    def on_result(result: dict) -> None:
        with times.lock:
            times.result_walk[result["result_id"]] = result["walk_id"]
            times.outcomes[result["outcome"]] = times.outcomes.get(result["outcome"], 0) + 1
        inference = result.get("latency_ms", {}).get("inference")
        if inference is not None:
            times.add("inference", float(inference))

    kiosk = Kiosk(
        cfg, options=ServiceOptions(install_signals=False), components=parts, on_result=on_result
    )
    process = psutil.Process()
    cpu0, wall0 = process.cpu_times(), time.perf_counter()
    with PeakMemory() as memory:
        code = kiosk.run()
    wall = time.perf_counter() - wall0
    cpu1 = process.cpu_times()
    if code != 0:
        raise BenchmarkError(
            f"the kiosk loop exited with code {code} in {mode} mode; run `python -m edge run` to see why"
        )
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    frames = kiosk.health.get("frames_seen")
    for ms in times.since_walk_end_ms(times.stored):
        times.add("walk_to_outbox", ms)
    stages = {name: summarize(v) for name, v in times.samples.items() if v}
    if realtime:
        stages.pop("source", None)  # includes the 30 fps pacing sleep: not a cost
    ack = times.since_walk_end_ms(times.acked)
    return {
        "mode": mode,
        "walks": args.sim_walks,
        "results": sum(times.outcomes.values()),
        "outcomes": dict(times.outcomes),
        "acknowledged": len(ack),
        "frames_seen": frames,
        "frames_dropped": kiosk.health.get("frames_dropped"),
        "frames_bad": kiosk.health.get("frames_bad"),
        "wall_s": wall,
        # over the frame stream itself: start-up (model warm-up) and the final outbox flush are not frames
        "frames_per_s": (frames - 1) / (times.frame_span[-1] - times.frame_span[0])
        if len(times.frame_span) == 2 and frames > 1
        else None,
        "cpu_s": cpu_s,
        "cpu_cores_busy": cpu_s / wall if wall > 0 else None,
        "peak_rss_mib": memory.peak / 2**20,
        "stages_ms": stages,
        "walk_end_to_ack_ms": summarize(ack) if ack else None,
        "samples_ms": {"walk_end_to_ack": ack},
    }


def build_pipeline_report(args: argparse.Namespace, command: str) -> dict:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with (
        local_broker(args.broker) as broker,
        tempfile.TemporaryDirectory(prefix="gaitmil-bench-") as tmp,
    ):
        results = [run_mode(mode, args, broker, Path(tmp)) for mode in modes]
        # ru_maxrss: kilobytes on Linux; the whole process's peak since it started (imports included)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "schema": SCHEMA_ID,
        "command": command,
        "environment": environment([args.model_path]),
        "settings": {
            "config": str(args.config) if args.config else None,
            "runner": args.runner_name,
            "model": str(args.model_path),
            "threads": args.threads,
            "sim_walks": args.sim_walks,
            "seed": args.seed,
            "modes": modes,
            "broker": "embedded (amqtt, MQTT 3.1.1)" if broker.embedded else broker.url,
        },
        "modes": results,
        "process_peak_rss_mib": peak_kib / 1024,
        "notes": [
            "CPU use and peak memory include the simulator rendering the camera frames in this process.",
            rep.SIMULATION_NOTE.split(". ")[0] + ".",
        ],
    }


def pipeline_markdown(report: dict) -> str:
    s = report["settings"]
    out = [
        f"## Kiosk pipeline: {s['runner']} {Path(s['model']).name}, {s['threads']} threads, "
        f"{s['sim_walks']} simulated walks per mode, broker {s['broker']}",
        f"`{report['command']}`",
        "",
        f"Machine: {describe_machine(report['environment'])}",
        "",
        rep.markdown_table(
            [
                "mode",
                "results",
                "acked",
                "frames",
                "dropped",
                "frames/s",
                "CPU cores busy",
                "peak RSS (MiB)",
            ],
            [
                [
                    m["mode"],
                    m["results"],
                    m["acknowledged"],
                    m["frames_seen"],
                    m["frames_dropped"],
                    rep.fmt(m["frames_per_s"], 1),
                    rep.fmt(m["cpu_cores_busy"]),
                    rep.fmt(m["peak_rss_mib"], 0),
                ]
                for m in report["modes"]
            ],
        ),
    ]
    for m in report["modes"]:
        rows = [
            (f"{name} (per frame)" if name in FRAME_STAGES else f"{name} (per walk)", summary)
            for name, summary in m["stages_ms"].items()
        ]
        rows.append(("walk end to broker ack", m["walk_end_to_ack_ms"]))
        out += ["", f"### {m['mode']}", "", rep.stats_table(rows)]
    out += [
        "",
        "source = the simulator rendering a frame (fast mode only; a camera does this itself).",
        "",
    ]
    out += [f"Note: {n}" for n in report["notes"]]
    return "\n".join(out)


def main_pipeline(args: argparse.Namespace, command: str) -> int:
    """Entry from benchmarks.latency when --pipeline is given."""
    from benchmarks.backends import resolve_backends
    from edge.publishing.topic_guard import guarded_prefix

    # refused before any model is loaded or broker started; run_mode applies it to each kiosk
    guarded_prefix(
        args.topic_prefix, args.allow_production_prefix, "python -m benchmarks.latency --pipeline"
    )
    specs = resolve_backends(args.backend, args.model, args.precision, None)
    if len(specs) != 1:
        raise BenchmarkError(f"--pipeline runs one kiosk: give one --backend (got {len(specs)})")
    args.runner_name, args.model_path = specs[0].name, specs[0].model
    report = build_pipeline_report(args, command)
    text = pipeline_markdown(report)
    rep.emit(report, text, args.markdown, args.json)
    if args.plot:
        series = {
            f"{m['mode']}: walk end to ack": m["samples_ms"]["walk_end_to_ack"]
            for m in report["modes"]
            if m["samples_ms"]["walk_end_to_ack"]
        }
        if series:
            rep.plot_distributions(
                series, args.plot, "Kiosk pipeline", "walk end to broker acknowledgement (ms)"
            )
    return 0
