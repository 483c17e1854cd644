"""`python -m edge demo`: the whole kiosk on one machine, with nothing to set up.

Simulated camera (sim://), the shipped demo model on ONNX Runtime (the CPU
INT8 model once its precision report says it met its targets, else FP32;
INT8 is the faster form on CPUs with VNNI), an embedded MQTT broker on
loopback (unless --broker), and a console subscriber that prints each result
the way a dashboard lists it, then a summary. The demo model was trained on
simulated walks: its outputs check the pipeline, they screen nobody.
"""

from __future__ import annotations

import json
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
# Fastest first: unsigned-activation INT8 for CPUs, then the FP32 reference.
# A quantized form is used only when the precision report shipped beside it
# (calibration's report.json) says it met its agreement and accuracy targets;
# the demo must not show outcomes from a form that disagrees with FP32.
DEMO_MODELS = ("model.int8-cpu.onnx", "model.onnx")
REPORT_NAME = "report.json"
REPORT_KEYS = {"model.int8-cpu.onnx": "int8-cpu"}


def meets_precision_targets(model: Path) -> bool:
    """True for an FP32 model, or a quantized one whose shipped report says it met its targets."""
    key = REPORT_KEYS.get(model.name)
    if key is None:
        return True
    try:
        report = json.loads((model.parent / REPORT_NAME).read_text(encoding="utf-8"))
        return report["models"][key]["meets_target"] is True
    except (OSError, ValueError, KeyError, TypeError):
        return False


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
            if (folder / name).is_file() and meets_precision_targets(folder / name):
                return folder / name
            if (folder / name).is_file():
                log.info("%s missed its precision targets (%s): not used by the demo", folder / name, REPORT_NAME)
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
            # the embedded broker has no ACL, so no publish is refused: 3.1.1 loses nothing there
            "mqtt.allow_protocol_311": protocol == "3.1.1",
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
