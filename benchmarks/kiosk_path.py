"""`python -m benchmarks.kiosk_path`: the shipped model judged on what the kiosk infers on.

Fresh simulated walks (seeds no training or calibration set uses) go through the
kiosk's own path: the simulated camera, the depth segmenter with its site model,
the walk gate, the classifier on ONNX Runtime and the referral threshold of the
model card, exactly as `python -m edge run --source sim://...` runs them (only
MQTT is left out). Printed: results per simulated walk (target: exactly one),
the retake rate, 3-class accuracy, per-class sensitivity and specificity, macro
F1 and the screening pair with 95 % bootstrap confidence intervals, and the same
figures on the simulator's clean masks of the same frames, so the cost of the
kiosk's segmentation stays visible.

    python -m benchmarks.kiosk_path --model models/demo/model.onnx --walks 300

The queue scenario (issue 28) sends simulated children one after another, the next
coming into view -0.5 s (both in view) to 3 s after the one before was last in view, toward, away
and side-on, depth and colour, through the same segmenters and gate, and checks every
walk against the simulator's truth of which child each pixel shows (benchmarks.queues):
results per child (target: exactly one, or a share in a multiple_people retake), merged
walks (kept frames of two children: must be 0), stray retakes after a child's judged walk
(must be 0) and fragments dropped. The gate decides these, not the model:

    python -m benchmarks.kiosk_path --queues-only --queue-children 108

The demo model was trained on simulated walks: these figures check the
pipeline, they say nothing about screening real children.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.spec import CLASSES
from gaitmil import metrics

SEEDS = (9100, 9101)  # fresh simulated children: no data set of the project uses these seeds
QUEUE_SEED = 9200  # the queue scenario's children: fresh too
QUEUE_VIEWS = ("toward", "away", "side")
QUEUE_GAPS = (
    -0.5,
    0.0,
    0.5,
    1.0,
    2.0,
    3.0,
)  # seconds from one child last in view to the next in view
TARGETS = {"accuracy": 0.85, "sensitivity": 0.95, "specificity": 0.80, "retake_rate": 0.05}
NOTE = (
    "Simulated walks through the kiosk's own segmenter and gate: a pipeline check of a model trained "
    "on simulated walks, not a screening figure."
)


def figures(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, per class, macro F1, screening pair, with the model card's 95 % bootstrap intervals."""
    from gaitmil.screening_report import bootstrap

    summary = metrics.summarize(labels, probs, threshold)
    ci = bootstrap(labels, probs, threshold)["figures"]

    def interval(key: str) -> list[float]:
        return [ci[key]["low"], ci[key]["high"]]

    screening = summary["screening"]
    return {
        "walks": int(len(labels)),
        "accuracy": summary["accuracy"],
        "accuracy_ci": interval("accuracy"),
        "per_class": summary["per_class"],
        "macro_f1": summary["macro"]["f1"],
        "confusion_matrix": summary["confusion_matrix"],
        "threshold": threshold,
        "sensitivity": screening["sensitivity"],
        "sensitivity_ci": interval("sensitivity"),
        "specificity": screening["specificity"],
        "specificity_ci": interval("specificity"),
        "referral_rate": screening["referral_rate"],
    }


def run(
    model: Path, walks: int, seeds: tuple[int, ...] = SEEDS, threads: int | None = None
) -> dict[str, Any]:
    """Every walk of the fresh streams through the kiosk path; the report as a dict."""
    from edge.collect import kiosk_walks
    from edge.config import load_config
    from edge.runners.registry import create_runner
    from edge.screening.classify import Classifier
    from edge.types import Walk
    from edge.wiring import screening_threshold

    per_stream = max(1, walks // len(seeds))
    uris = [f"sim://?seed={seed}&walks={per_stream}&view=mixed" for seed in seeds]
    cfg = load_config(None, {"source.uri": uris[0], "model.path": str(model)}, env={})
    threshold = screening_threshold(cfg)
    runner = create_runner("onnxruntime", model, threads=threads)
    labels, kiosk_probs, clean_probs, reasons, per_walk = [], [], [], Counter(), Counter()
    reasons_dropped = 0
    start = time.perf_counter()
    with runner:
        classifier = Classifier(runner)
        height = runner.input_shape[2]  # walks at the model's height (64x44 or 128x88)
        for n, uri in enumerate(uris):
            stream_cfg = load_config(None, {"source.uri": uri, "model.path": str(model)}, env={})
            for item in kiosk_walks(stream_cfg, with_clean=True, input_height=height):
                if item.walk.fragment:  # the kiosk drops it (no session token here): no result
                    reasons_dropped += 1
                    continue
                for walk_index in item.truth.get("sim_walks", []):
                    per_walk[(n, walk_index)] += 1
                reasons[item.walk.retake_reason or "judged"] += 1
                if item.walk.retake_reason is not None or item.truth.get("label") is None:
                    continue
                labels.append(int(item.truth["label"]))
                kiosk_probs.append(classifier.classify(item.walk).probs)
                clean = Walk(
                    start_time=item.walk.start_time,
                    end_time=item.walk.end_time,
                    silhouettes=item.clean,
                    timestamps=item.walk.timestamps,
                    quality=item.walk.quality,
                )
                clean_probs.append(classifier.classify(clean).probs)
    seen = per_stream * len(uris)
    results_per_walk = Counter(
        per_walk.get((n, i), 0) for n in range(len(uris)) for i in range(per_stream)
    )
    y = np.asarray(labels, np.int64)
    report = {
        "note": NOTE,
        "model": str(model),
        "sources": uris,
        "threshold": threshold.value,
        "threshold_source": threshold.source,
        "simulated_walks": seen,
        "results": int(sum(reasons.values())),
        "results_per_walk": {str(k): v for k, v in sorted(results_per_walk.items())},
        "outcomes": dict(reasons),
        "fragments_dropped": reasons_dropped,
        "retake_rate": 1.0 - reasons.get("judged", 0) / max(sum(reasons.values()), 1),
        "seconds": round(time.perf_counter() - start, 1),
        "targets": TARGETS,
    }
    if len(y):
        report["kiosk"] = figures(y, np.asarray(kiosk_probs, np.float64), threshold.value)
        report["clean"] = figures(y, np.asarray(clean_probs, np.float64), threshold.value)
    return report


def run_queues(children: int, per_queue: int = 3, seed: int = QUEUE_SEED) -> dict[str, Any]:
    """The queue scenario: `children` split over views x depth/colour x gaps, `per_queue` each."""
    from benchmarks.queues import run_queue, summarise

    combos = [(v, c, g) for c in (False, True) for v in QUEUE_VIEWS for g in QUEUE_GAPS]
    queues = max(1, -(-children // per_queue))
    start = time.perf_counter()
    runs = [
        run_queue(v, g, per_queue, seed + i, color=c)
        for i, (v, c, g) in ((i, combos[i % len(combos)]) for i in range(queues))
    ]
    report = summarise(runs)
    report["per_queue"] = per_queue
    report["gaps_s"] = list(QUEUE_GAPS)
    report["views"] = list(QUEUE_VIEWS)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def queue_markdown(q: dict[str, Any]) -> str:
    return (
        f"Queues (issue 28): {q['children']} simulated children in {q['queues']} queues of "
        f"{q['per_queue']} ({', '.join(q['views'])}; depth and colour; next child "
        f"{q['gaps_s'][0]:+.1f} to {q['gaps_s'][-1]:+.1f} s after the one before): "
        f"{q['children_ok']} of {q['children']} children got exactly one result or a share in a "
        f"multiple_people retake (results per child: {q['results_per_child']}); outcomes "
        f"{q['outcomes']}; merged walks {q['merged_walks']} (target 0; walks with any own "
        f"frame showing another child, silhouette or not: {q.get('mixed_walks', '-')}); "
        f"stray retakes after a "
        f"judged walk {q['stray_retakes']} (target 0); fragments dropped {q['fragments_dropped']}; "
        f"{q['seconds']} s.\n"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def _ci(pair: list[float]) -> str:
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]"


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"{report['note']}",
        "",
        f"Model `{report['model']}`, threshold {report['threshold']:.3f} ({report['threshold_source']}); "
        f"{report['simulated_walks']} simulated walks gave {report['results']} results "
        f"(results per walk: {report['results_per_walk']}); outcomes {report['outcomes']}; "
        f"retake rate {_pct(report['retake_rate'])} %.",
        "",
        "| silhouettes | walks | accuracy % [95 % CI] | macro F1 % | sensitivity % [CI] | specificity % [CI] "
        "| referral rate % | sens neg/neu/pos % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, title in (
        ("kiosk", "kiosk path (segmenter + gate)"),
        ("clean", "clean masks, same frames"),
    ):
        row = report.get(name)
        if row is None:
            continue
        per = "/".join(_pct(row["per_class"][c]["sensitivity"]) for c in CLASSES)
        lines.append(
            f"| {title} | {row['walks']} | {_pct(row['accuracy'])} {_ci(row['accuracy_ci'])} | "
            f"{_pct(row['macro_f1'])} | {_pct(row['sensitivity'])} {_ci(row['sensitivity_ci'])} | "
            f"{_pct(row['specificity'])} {_ci(row['specificity_ci'])} | {_pct(row['referral_rate'])} | {per} |"
        )
    t = report["targets"]
    lines += [
        "",
        f"Targets (issue 13, kiosk path): accuracy >= {_pct(t['accuracy'])} %, sensitivity >= "
        f"{_pct(t['sensitivity'])} % with specificity >= {_pct(t['specificity'])} %, retakes <= "
        f"{_pct(t['retake_rate'])} %, exactly one result per walk.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.kiosk_path",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument(
        "--model",
        default="models/demo/model.onnx",
        help="FP32 ONNX model (its card gives the threshold)",
    )
    ap.add_argument("--walks", type=int, default=300, help="simulated walks, split over the seeds")
    ap.add_argument(
        "--seeds", default=",".join(str(s) for s in SEEDS), help="sim:// seeds, comma-separated"
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="ONNX Runtime threads (default: its own choice)"
    )
    ap.add_argument(
        "--queue-children",
        type=int,
        default=108,
        help="children in the queue scenario (0: leave it out)",
    )
    ap.add_argument(
        "--queues-only", action="store_true", help="only the queue scenario (no model needed)"
    )
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--md", help="write the Markdown table here")
    args = ap.parse_args(argv)
    report: dict[str, Any] = {}
    text = ""
    if not args.queues_only:
        report = run(
            Path(args.model),
            args.walks,
            tuple(int(s) for s in args.seeds.split(",")),
            args.threads,
        )
        text = to_markdown(report)
    if args.queue_children > 0:
        report["queues"] = run_queues(args.queue_children)
        text += ("\n" if text else "") + queue_markdown(report["queues"])
    sys.stdout.write(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float) + "\n")
    if args.md:
        Path(args.md).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
