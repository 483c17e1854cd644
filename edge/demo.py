"""`python -m edge demo`: the whole kiosk on one machine, with nothing to set up.

Simulated camera (sim://), the shipped demo model on ONNX Runtime (its FP32
form, which is what the kiosk runs by default: the CPU INT8 form was slower
than FP32 on every x86 CPU measured, see docs/CALIBRATION.md), an embedded MQTT broker on
loopback (unless --broker), and a console subscriber that prints each result
the way a dashboard lists it, then a summary. The demo model was trained on
simulated walks: its outputs check the pipeline, they screen nobody.

Its results go out under the test topic prefix (edge.publishing.topic_guard, `gaitmil-test/v1`),
so a demo pointed at a real broker with --broker never lands in real records;
the production prefix is refused unless --allow-production-prefix is given.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from edge.errors import ModelError
from edge.sources.sim_truth import SimTruth
from edge.types import Walk
from gaitcontract.spec import CLASSES

NEGATIVE = CLASSES.index("negative")

log = logging.getLogger(__name__)

DISCLAIMER = (
    "NOTE: the demo model was trained on simulated walks. It checks the pipeline end to end; "
    "it is not a screening tool and its outcomes say nothing about any child."
)
# The FP32 form: the demo shows what a kiosk on its default configuration runs.
DEMO_MODELS = ("model.onnx",)


@dataclass
class DemoOptions:
    walks: int = 5
    broker: str | None = None  # None: embedded amqtt broker on loopback
    seed: int = 0
    model: str | None = None
    realtime: bool = False  # pace the simulated camera at its frame rate
    scenario: str | None = None
    site_id: str = "demo-school"
    kiosk_id: str = "demo-kiosk"
    result_timeout_s: float = 15.0
    topic_prefix: str | None = None  # None: edge.publishing.topic_guard.TEST_PREFIX
    allow_production_prefix: bool = False  # allow a production prefix (gaitmil/...): real records


def demo_model_dirs() -> list[Path]:
    """Where the shipped demo model is looked for: ./models/demo, then beside the package."""
    here = Path(__file__).resolve().parent.parent / "models" / "demo"
    cwd = Path.cwd() / "models" / "demo"
    return [cwd] if cwd == here else [cwd, here]


def find_demo_model(explicit: str | None = None) -> Path:
    """The demo model to run; ModelError saying how to get one when there is none."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ModelError(f"--model {explicit}: file not found")
        return path
    for folder in demo_model_dirs():
        for name in DEMO_MODELS:
            if (folder / name).is_file():
                return folder / name
    looked = ", ".join(str(d / n) for d in demo_model_dirs() for n in DEMO_MODELS)
    raise ModelError(
        f"no demo model found (looked for {looked}); build it with `make demo-model`, "
        "or pass --model PATH to an exported ONNX model"
    )


def run_demo(options: DemoOptions, out: TextIO | None = None) -> int:
    """Run the demo; returns 0 when every walk's result reached the console subscriber."""
    from edge.config import load_config
    from edge.logs import setup_logging
    from edge.publishing.broker import EmbeddedBroker
    from edge.publishing.subscriber import ResultSubscriber
    from edge.publishing.topic_guard import guarded_prefix
    from edge.service import Kiosk, ServiceOptions
    from edge.sources import open_source
    from edge.wiring import build_components, screening_threshold

    prefix = guarded_prefix(
        options.topic_prefix, options.allow_production_prefix, "python -m edge demo"
    )
    out = out or sys.stdout
    setup_logging("WARNING")
    model = find_demo_model(options.model)
    broker = None
    state = Path(tempfile.mkdtemp(prefix="gaitmil-demo-"))
    subscriber = None
    try:
        if options.broker is None:
            broker = EmbeddedBroker()
            url = broker.start()
            protocol = "3.1.1"  # amqtt speaks MQTT 3.1.1 only
        else:
            url, protocol = options.broker, "5"
        uri = f"sim://?seed={options.seed}&walks={options.walks}&realtime={int(options.realtime)}"
        if options.scenario:
            uri += f"&scenario={options.scenario}"
        cfg = load_config(
            None,
            {
                "source.uri": uri,
                "model.path": str(model),
                "model.runner": "onnxruntime",
                # the demo model learned from simulated walks: fine for showing the pipeline
                "screening.allow_simulated_model": True,
                "mqtt.url": url,
                "mqtt.protocol": protocol,
                "mqtt.topic_prefix": prefix,
                "state_dir": str(state),
                # the embedded broker has no ACL, so no publish is refused: 3.1.1 loses nothing there
                "mqtt.allow_protocol_311": protocol == "3.1.1",
                "kiosk.site_id": options.site_id,
                "kiosk.kiosk_id": options.kiosk_id,
                "outbox.flush_seconds": 5.0,
            },
            env={},
        )
        frames_truth = SimTruth()
        source = open_source(uri, config=cfg.source, truth=frames_truth)
        truth = TruthReport(frames_truth)
        subscriber = ResultSubscriber(
            cfg.mqtt.model_copy(update={"client_id": None}),
            site=options.site_id,
            kiosk=options.kiosk_id,
            out=out,
            annotate=truth.annotate,
        )
        subscriber.start(wait=10.0)
        threshold = screening_threshold(cfg)
        print(
            f"gaitmil-edge demo: {options.walks} simulated walk(s), model {model}, broker {url}, "
            f"topics {prefix}/...",
            file=out,
        )
        print(f"referral threshold {threshold.value:.2f} ({threshold.source})", file=out)
        print(DISCLAIMER, file=out)
        print("-" * 78, file=out)
        kiosk = Kiosk(
            cfg,
            options=ServiceOptions(max_walks=options.walks),
            components=build_components(cfg, source=source, threshold=threshold),
            on_walk_result=truth.observe,
        )
        code = kiosk.run()
        arrived = subscriber.wait_for(kiosk.results, options.result_timeout_s)
        _summary(kiosk, subscriber, out)
        truth.summary(subscriber.results, out)
        if not arrived:
            print(
                f"only {len(subscriber.results)} of {kiosk.results} result(s) reached the subscriber",
                file=out,
            )
            return code or 1
        return code
    finally:
        if subscriber is not None:
            subscriber.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(state, ignore_errors=True)


class TruthReport:
    """What the simulator knows about each walk, beside (never inside) the published results.

    The kiosk's walk observer maps each walk to the simulated child seen in most of
    its frames (edge.sources.sim_truth); the console subscriber prints that truth after
    the result line, with a mark for agreement, and the summary gives the run's confusion matrix.
    """

    def __init__(self, frames: SimTruth) -> None:
        self.frames = frames
        self.by_walk: dict[str, tuple[int, float | None]] = {}

    def observe(self, walk: Walk, result: dict) -> None:
        truth, _, _ = self.frames.take(walk)
        label, severity = truth.get("label"), truth.get("severity")
        if isinstance(label, int):
            self.by_walk[result["walk_id"]] = (
                label,
                float(severity) if isinstance(severity, (int, float)) else None,
            )

    def annotate(self, result: dict) -> str:
        truth = self.by_walk.get(result.get("walk_id", ""))
        if truth is None:
            return ""
        label, severity = truth
        text = f"| truth: {CLASSES[label]}" + (
            f" ({severity:.1f} deg)" if severity is not None else ""
        )
        if result.get("outcome") in ("retake", "rescreen"):
            return text
        referred = result.get("outcome") == "refer_for_clinical_exam"
        return text + ("  ok" if referred == (label != NEGATIVE) else "  WRONG")

    def summary(self, results: list[dict], out: TextIO) -> None:
        judged = [
            (self.by_walk[r["walk_id"]][0], r)
            for r in results
            if r.get("outcome") in ("refer_for_clinical_exam", "no_referral_indicated")
            and r.get("walk_id") in self.by_walk
        ]
        if not judged:
            return
        matrix = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
        for label, result in judged:
            probs = result["probabilities"]
            matrix[label, int(np.argmax([probs[c] for c in CLASSES]))] += 1
        print(
            "simulator truth (rows) against the model's most likely class (columns), judged walks:",
            file=out,
        )
        print("            " + " ".join(f"{c:>9}" for c in CLASSES), file=out)
        for i, name in enumerate(CLASSES):
            print(f"  {name:>9} " + " ".join(f"{v:>9d}" for v in matrix[i]), file=out)
        refer = [
            (label != NEGATIVE, r["outcome"] == "refer_for_clinical_exam") for label, r in judged
        ]
        pos = [got for truth, got in refer if truth]
        neg = [not got for truth, got in refer if not truth]
        sens = f"{sum(pos)}/{len(pos)}" if pos else "n/a"
        spec = f"{sum(neg)}/{len(neg)}" if neg else "n/a"
        print(
            f"screening this run: sensitivity {sens} (neutral or positive referred), "
            f"specificity {spec} (negative not referred); a few walks say little: see the model card",
            file=out,
        )


def _summary(kiosk, subscriber, out: TextIO) -> None:  # noqa: ANN001 - Kiosk, ResultSubscriber
    snap = kiosk.health.snapshot()
    print("-" * 78, file=out)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(snap["retake_reasons"].items())) or "none"
    print(
        f"walks {snap['walks']}: referrals {snap['referrals']}, no referral {snap['no_referrals']}, "
        f"retakes {snap['retakes']} ({reasons}); received by the dashboard: {len(subscriber.results)}",
        file=out,
    )
    for stage, label in (
        ("inference", "inference"),
        ("walk_to_result", "walk end -> result queued"),
        ("frame", "segmentation + walk assembly per frame"),
    ):
        pct = snap["latency_ms"].get(stage)
        if pct and pct["p50"] is not None:
            print(
                f"{label}: p50 {pct['p50']:.1f} ms, p95 {pct['p95']:.1f} ms, p99 {pct['p99']:.1f} ms",
                file=out,
            )
    print(
        f"frames seen {snap['frames_seen']}, dropped {snap['frames_dropped']}, bad {snap['frames_bad']}",
        file=out,
    )
    print(DISCLAIMER, file=out)
