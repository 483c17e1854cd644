"""`python -m edge demo`: the whole kiosk on one machine, with nothing to set up.

Simulated camera (sim://), the shipped demo model on ONNX Runtime (its FP32
form, which is what the kiosk runs by default: the CPU INT8 form was slower
than FP32 on every x86 CPU measured, see docs/CALIBRATION.md), an embedded MQTT broker on
loopback (unless --broker), and a console subscriber that prints each result
the way a dashboard lists it, then a summary. The demo model was trained on
simulated walks: its outputs check the pipeline, they screen nobody.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from edge.errors import ModelError

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
    from edge.broker import EmbeddedBroker
    from edge.config import load_config, parse_broker_url
    from edge.logs import setup_logging
    from edge.service import Kiosk, ServiceOptions
    from edge.subscriber import ResultSubscriber, SubscriberSettings

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
        cfg = load_config(None, {
            "source.uri": uri, "model.path": str(model), "model.runner": "onnxruntime",
            "mqtt.url": url, "mqtt.protocol": protocol, "state_dir": str(state),
            "kiosk.site_id": options.site_id, "kiosk.kiosk_id": options.kiosk_id,
            "outbox.flush_seconds": 5.0,
        }, env={})
        address = parse_broker_url(url)
        subscriber = ResultSubscriber(
            SubscriberSettings(host=address.host, port=address.port, site=options.site_id,
                               kiosk=options.kiosk_id, protocol=protocol),
            out=out,
        )
        subscriber.start(wait=10.0)
        threshold = cfg.threshold()
        print(f"gaitmil-edge demo: {options.walks} simulated walk(s), model {model}, broker {url}", file=out)
        print(f"referral threshold {threshold.value:.2f} ({threshold.source})", file=out)
        print(DISCLAIMER, file=out)
        print("-" * 78, file=out)
        kiosk = Kiosk(cfg, options=ServiceOptions(max_walks=options.walks))
        code = kiosk.run()
        arrived = subscriber.wait_for(kiosk.results, options.result_timeout_s)
        _summary(kiosk, subscriber, out)
        if not arrived:
            print(f"only {len(subscriber.results)} of {kiosk.results} result(s) reached the subscriber", file=out)
            return code or 1
        return code
    finally:
        if subscriber is not None:
            subscriber.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(state, ignore_errors=True)


def _summary(kiosk, subscriber, out: TextIO) -> None:  # noqa: ANN001 - Kiosk, ResultSubscriber
    snap = kiosk.health.snapshot()
    print("-" * 78, file=out)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(snap["retake_reasons"].items())) or "none"
    print(
        f"walks {snap['walks']}: referrals {snap['referrals']}, no referral {snap['no_referrals']}, "
        f"retakes {snap['retakes']} ({reasons}); received by the dashboard: {len(subscriber.results)}",
        file=out,
    )
    for stage, label in (("inference", "inference"), ("walk_to_result", "walk end -> result queued"),
                         ("frame", "segmentation + walk assembly per frame")):
        pct = snap["latency_ms"].get(stage)
        if pct and pct["p50"] is not None:
            print(f"{label}: p50 {pct['p50']:.1f} ms, p95 {pct['p95']:.1f} ms, p99 {pct['p99']:.1f} ms", file=out)
    print(f"frames seen {snap['frames_seen']}, dropped {snap['frames_dropped']}, bad {snap['frames_bad']}", file=out)
    print(DISCLAIMER, file=out)
