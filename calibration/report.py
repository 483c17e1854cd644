"""`calibration report`: FP32 vs FP16 vs INT8 on held-out walks, as JSON, a Markdown table and a PNG."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.dataset import CalibrationSet, load_set
from calibration.errors import CalibrationError
from export.onnx_utils import get_metadata, load_onnx, ort_session, run_batched
from export.parity import compare_outputs
from gaitcontract import spec
from gaitmil import metrics

INT8_MIN_AGREEMENT = 0.99
INT8_MAX_ACCURACY_DROP = 0.01
FP16_MIN_AGREEMENT = 0.995
SIMULATED_NOTE = (
    "Held-out walks from the simulator: these numbers check the pipeline and the precision "
    "conversion; the demo model is not a screening tool."
)
BLOCKS = {
    "stem": ["/model/encoder/stem/*"],
    "layer1": ["/model/encoder/layers/layers.0/*"],
    "layer2": ["/model/encoder/layers/layers.1/*"],
    "layer3": ["/model/encoder/layers/layers.2/*"],
    "layer4": ["/model/encoder/layers/layers.3/*"],
    "intra-attention": ["/model/intra/*"],
    "inter-attention": ["/model/inter/*"],
}


@dataclass
class ModelEntry:
    name: str  # fp32 | fp16 | int8-tensorrt | int8-cpu
    path: Path
    precision: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def name_model(path: Path) -> tuple[str, str]:
    """('int8-cpu', 'int8') etc. from the model's metadata (INT8 models are named by their target)."""
    meta = get_metadata(load_onnx(path))
    precision = meta.get("precision", "fp32")
    target = meta.get("int8_target")
    return (f"int8-{target}" if precision == "int8" and target else precision), precision


def evaluate(
    entries: list[ModelEntry], held_out: CalibrationSet, threshold: float = 0.5
) -> dict[str, Any]:
    """Metrics of every model on the held-out walks, with agreement against the first (FP32) entry."""
    labels = held_out.labels
    if (labels < 0).any():
        raise CalibrationError(
            "the held-out set has walks without labels; report needs labelled walks "
            "(collect it with --sim or --dataset, not --walks)"
        )
    walks = held_out.model_input()
    for entry in entries:
        entry.outputs = run_batched(ort_session(entry.path), walks)
    reference = entries[0]
    rows = {}
    for entry in entries:
        summary = metrics.summarize(labels, entry.outputs["probs"].astype(np.float64), threshold)
        parity = compare_outputs(reference.outputs, entry.outputs, reference.name, entry.name)
        row = {
            "model": str(entry.path),
            "precision": entry.precision,
            "accuracy": summary["accuracy"],
            "per_class": summary["per_class"],
            "screening": summary["screening"],
            "confusion_matrix": summary["confusion_matrix"],
            "agreement_vs_fp32": parity.argmax_agreement,
            "mean_abs_dprob": parity.mean_abs_dprob,
            "max_abs_dprob": parity.max_abs_dprob,
        }
        row["meets_target"] = meets_target(
            entry.precision, row, rows.get(reference.name, row), len(labels)
        )
        rows[entry.name] = row
    return {
        "walks": int(len(labels)),
        "held_out": held_out.describe(),
        "note": SIMULATED_NOTE,
        "targets": {
            "int8_min_agreement": INT8_MIN_AGREEMENT,
            "int8_max_accuracy_drop": INT8_MAX_ACCURACY_DROP,
            "fp16_min_agreement": FP16_MIN_AGREEMENT,
        },
        "models": rows,
    }


def _binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def agreement_bounds(agree: int, walks: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of an agreement rate measured on `walks` walks.

    Found by bisection on the binomial CDF, so the report needs no statistics library.
    """
    alpha = (1.0 - confidence) / 2

    def solve(predicate) -> float:  # smallest p in [0, 1] with predicate(p) true (monotone)
        low, high = 0.0, 1.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (low, mid) if predicate(mid) else (mid, high)
        return high

    lower = 0.0 if agree == 0 else solve(lambda p: 1 - _binomial_cdf(agree - 1, walks, p) >= alpha)
    upper = 1.0 if agree == walks else solve(lambda p: _binomial_cdf(agree, walks, p) <= alpha)
    return lower, upper


def meets_target(
    precision: str, row: dict[str, Any], fp32: dict[str, Any], walks: int
) -> bool | None:
    """INT8 >= 99 % agreement and accuracy within 1 point; FP16 >= 99.5 % agreement.

    Three answers, because a sample too small to tell is not a failure: True when
    the measured figures meet the target; False only when the 95 % interval of
    the agreement lies wholly below it (or the accuracy drop is larger than the
    disagreements could explain by chance); None (inconclusive) otherwise.
    On 30 walks one near-tie flip is 96.7 %, whose interval still holds 99 %.
    """
    if precision not in ("int8", "fp16"):
        return None
    target = INT8_MIN_AGREEMENT if precision == "int8" else FP16_MIN_AGREEMENT
    agreement = row["agreement_vs_fp32"]
    drop = fp32["accuracy"] - row["accuracy"] if precision == "int8" else 0.0
    if agreement >= target and drop <= INT8_MAX_ACCURACY_DROP + 1e-12:
        return True
    agree = int(round(agreement * walks))
    _, high = agreement_bounds(agree, walks)
    # an accuracy drop is at most the disagreement rate: judge it with the same interval
    drop_low = drop - (high - agreement)
    if high < target or drop_low > INT8_MAX_ACCURACY_DROP:
        return False
    return None


def _pct(value: float) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (sensitivity/specificity one-vs-rest per class, in %)."""
    head = (
        "| model | accuracy % | sens neg/neu/pos % | spec neg/neu/pos % | agreement vs FP32 % "
        "| mean abs dprob | max abs dprob | target |"
    )
    lines = [f"Held-out walks: {report['walks']}. {report['note']}", "", head, "|" + "---|" * 8]
    for name, row in report["models"].items():
        per = [row["per_class"][c] for c in spec.CLASSES]
        target = {
            True: "met",
            False: "MISSED",
            None: "reference" if name == "fp32" else "inconclusive",
        }[row["meets_target"]]
        lines.append(
            f"| {name} | {_pct(row['accuracy'])} | {'/'.join(_pct(p['sensitivity']) for p in per)} | "
            f"{'/'.join(_pct(p['specificity']) for p in per)} | {_pct(row['agreement_vs_fp32'])} | "
            f"{row['mean_abs_dprob']:.2e} | {row['max_abs_dprob']:.2e} | {target} |"
        )
    if report.get("sensitivity"):
        target = report.get("sensitivity_target", "cpu")
        lines += [
            "",
            f"Quantizing one block at a time ({target} target), most harmful first:",
            "",
            "| block | agreement vs FP32 % | mean abs dprob | max abs dprob |",
            "|---|---|---|---|",
        ]
        for item in report["sensitivity"]:
            lines.append(
                f"| {item['block']} | {_pct(item['agreement_vs_fp32'])} | "
                f"{item['mean_abs_dprob']:.2e} | {item['max_abs_dprob']:.2e} |"
            )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    """Bar charts of accuracy, agreement and max |dprob| per model (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["models"])
    rows = [report["models"][n] for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes[0].bar(names, [100 * r["accuracy"] for r in rows], color="tab:blue")
    axes[0].set_title("accuracy on held-out walks (%)")
    axes[1].bar(names, [100 * r["agreement_vs_fp32"] for r in rows], color="tab:green")
    axes[1].axhline(100 * INT8_MIN_AGREEMENT, color="grey", linestyle="--", linewidth=1)
    axes[1].set_ylim(min(90.0, min(100 * r["agreement_vs_fp32"] for r in rows) - 1), 100.5)
    axes[1].set_title("argmax agreement with FP32 (%)")
    axes[2].bar(names, [max(r["max_abs_dprob"], 1e-9) for r in rows], color="tab:orange")
    axes[2].set_yscale("log")
    axes[2].set_title("max |dprob| vs FP32")
    for axis in axes:
        axis.tick_params(axis="x", rotation=20)
    fig.suptitle(
        f"{report['walks']} simulated held-out walks: a pipeline check, not a screening result",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sensitivity(
    fp32: Path,
    calib: CalibrationSet,
    held_out: CalibrationSet,
    target: str = "cpu",
    blocks: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """Quantize one block at a time and rank blocks by the damage they do (worst first)."""
    from calibration.quantize import QuantizeConfig, quantize

    walks = held_out.model_input()
    reference = run_batched(ort_session(fp32), walks)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for block, patterns in (blocks or BLOCKS).items():
            out = Path(tmp) / f"{block}.onnx"
            quantize(
                QuantizeConfig(fp32, Path("<in memory>"), target, out=out, only=patterns),
                calib=calib,
            )
            parity = compare_outputs(reference, run_batched(ort_session(out), walks), "fp32", block)
            results.append(
                {
                    "block": block,
                    "patterns": patterns,
                    "agreement_vs_fp32": parity.argmax_agreement,
                    "max_abs_dprob": parity.max_abs_dprob,
                    "mean_abs_dprob": parity.mean_abs_dprob,
                }
            )
    return sorted(results, key=lambda r: (r["agreement_vs_fp32"], -r["max_abs_dprob"]))


def write_report(
    report: dict[str, Any], json_path: Path | None, md_path: Path | None, png_path: Path | None
) -> list[Path]:
    written = []
    try:
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(
                json.dumps(report, indent=2, sort_keys=True, default=float) + "\n", encoding="utf-8"
            )
            written.append(json_path)
        if md_path:
            md_path.parent.mkdir(parents=True, exist_ok=True)
            md_path.write_text(markdown(report), encoding="utf-8")
            written.append(md_path)
    except OSError as exc:
        raise CalibrationError(f"cannot write the report ({exc.strerror}: {exc.filename})") from exc
    if png_path:
        written.append(plot(report, png_path))
    return written


def build_report(
    fp32: Path,
    fp16: Path | None,
    int8: list[Path],
    data: Path,
    threshold: float = 0.5,
    with_sensitivity: bool = False,
    calib: Path | None = None,
    sensitivity_target: str = "cpu",
) -> dict[str, Any]:
    entries = [ModelEntry("fp32", Path(fp32), "fp32")]
    if name_model(Path(fp32))[1] != "fp32":
        raise CalibrationError(f"--fp32 {fp32} is not an FP32 model")
    for path in ([fp16] if fp16 else []) + list(int8):
        name, precision = name_model(Path(path))
        if any(e.name == name for e in entries):
            raise CalibrationError(
                f"two models are both {name}: name each INT8 model by a different target"
            )
        entries.append(ModelEntry(name, Path(path), precision))
    # per walk [T, H, W] as the model takes it: 64x44 or 128x88 (the set must match)
    walk_shape = tuple(int(d) for d in ort_session(fp32).get_inputs()[0].shape[1:])
    held_out = load_set(data, expected_shape=walk_shape)
    report = evaluate(entries, held_out, threshold)
    if with_sensitivity:
        calib_set = load_set(calib, expected_shape=walk_shape) if calib else held_out
        report["sensitivity"] = sensitivity(
            Path(fp32), calib_set, held_out, target=sensitivity_target
        )
        report["sensitivity_calibrated_on"] = str(calib or data)
        report["sensitivity_target"] = sensitivity_target
    return report
